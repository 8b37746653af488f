import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { redactUrl } from './redact-url.ts';

describe('redactUrl', () => {
  it('hides a password and keeps the user name, host, port, path and query', () => {
    assert.equal(
      redactUrl('amqp://app:s3cret@rabbit:5672/shop?heartbeat=5'),
      'amqp://app:***@rabbit:5672/shop?heartbeat=5',
    );
    assert.equal(redactUrl('redis://:s3cret@127.0.0.1:6379/2'), 'redis://:***@127.0.0.1:6379/2');
    assert.equal(redactUrl('rediss://default:p%40ss%3Aword@cache:6380'), 'rediss://default:***@cache:6380');
    assert.equal(redactUrl('postgres://app:a:b:c@db:5432/shop'), 'postgres://app:***@db:5432/shop');
  });

  it('hides a userinfo without a password whole: on NATS it is a token', () => {
    assert.equal(redactUrl('nats://t0ken@127.0.0.1:4222'), 'nats://***@127.0.0.1:4222');
  });

  it('hides every server of a comma-separated list', () => {
    assert.equal(
      redactUrl('nats://app:one@n1:4222,nats://t0ken@n2:4222,nats://n3:4222'),
      'nats://app:***@n1:4222,nats://***@n2:4222,nats://n3:4222',
    );
  });

  it('hides the values of query parameters that carry secrets, whatever their case', () => {
    assert.equal(
      redactUrl('postgres://app@db/shop?sslmode=require&password=s3cret&application_name=x'),
      'postgres://***@db/shop?sslmode=require&password=***&application_name=x',
    );
    assert.equal(
      redactUrl('nats://n1:4222?auth_token=abc&Token=def#frag'),
      'nats://n1:4222?auth_token=***&Token=***#frag',
    );
    assert.equal(
      redactUrl('postgres://db/shop?sslpassword=k&sslkey=/etc/key.pem'),
      'postgres://db/shop?sslpassword=***&sslkey=/etc/key.pem',
    );
  });

  it('leaves an @ after the host alone, and text that is not a URL unchanged', () => {
    assert.equal(redactUrl('redis://cache:6379/0?client=a@b'), 'redis://cache:6379/0?client=a@b');
    assert.equal(redactUrl('http://host/path/user:x@y'), 'http://host/path/user:x@y');
    assert.equal(redactUrl('./orders.db'), './orders.db');
    assert.equal(redactUrl('sqlite:/var/lib/app:data.db'), 'sqlite:/var/lib/app:data.db');
    assert.equal(redactUrl('amqp://@rabbit'), 'amqp://@rabbit');
    assert.equal(redactUrl(''), '');
  });

  it('leaves no secret of a long, many-part URL behind', () => {
    const secrets = ['pa55', 'tok3n', 'qs-secret'];
    const url = `nats://u:${secrets[0]}@a:1,nats://${secrets[1]}@b:2/?secret_key=${secrets[2]}`;
    const shown = redactUrl(url);
    for (const secret of secrets) assert.ok(!shown.includes(secret), `${secret} left in ${shown}`);
  });
});

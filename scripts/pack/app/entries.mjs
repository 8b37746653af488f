// Imports every entry of every installed Factline package (the @factline scope
// and the factline command line) with plain Node (no loader, no source
// condition) and prints how many names each one exports.
import { existsSync, readdirSync, readFileSync } from 'node:fs';

const modules = new URL('./node_modules/', import.meta.url);
const packages = readdirSync(new URL('@factline/', modules)).map((dir) => `@factline/${dir}`);
if (existsSync(new URL('factline/package.json', modules))) packages.push('factline');
const counts = {};
for (const name of packages) {
  const manifest = JSON.parse(readFileSync(new URL(`${name}/package.json`, modules), 'utf8'));
  for (const key of Object.keys(manifest.exports)) {
    const specifier = manifest.name + key.slice(1);
    counts[specifier] = Object.keys(await import(specifier)).length;
  }
}
console.log(JSON.stringify(counts));

import { getPostgresEventStore } from '@factline/postgres';

export async function postgresStore(connectionString: string, schema = 'factline') {
  // Creates the schema and its tables on first use; several processes may share it.
  const store = await getPostgresEventStore({ connectionString, schema });
  const { position } = await store.append('order-7', [{ type: 'OrderPlaced', data: { total: 30 } }], {
    expectedVersion: 'no-stream',
  });
  // A projection saves `checkpoint` and resumes after it: it never skips an event
  // whose transaction committed late, and never sees one twice.
  let checkpoint = position - 1;
  for await (const event of store.readAll({ after: checkpoint })) checkpoint = event.position;
  await store.close();
  return checkpoint;
}

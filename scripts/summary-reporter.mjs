// A node:test reporter that counts leaf tests and writes one JSON summary,
// with how many tests each skip reason accounts for (a capability a backend
// lacks is a skip with its reason, so the summary shows what did not run),
// and how long each test file's process ran (files run side by side, so
// these times overlap).

export default async function* summaryReporter(source) {
  let passed = 0;
  let failed = 0;
  let skipped = 0;
  const skipReasons = {};
  const fileMs = {};
  for await (const event of source) {
    // A test file is a test of its own, named by its path, around the tests it defines.
    if (event.type === 'test:complete' && event.data.nesting === 0 && event.data.name === event.data.file) {
      fileMs[event.data.file] = Math.round(event.data.details?.duration_ms ?? 0);
    }
    if (event.type !== 'test:pass' && event.type !== 'test:fail') continue;
    const details = event.data.details ?? {};
    if (details.type === 'suite') continue;
    if (event.data.skip !== undefined || event.data.todo !== undefined) {
      skipped += 1;
      const note = event.data.skip ?? event.data.todo;
      const reason = typeof note === 'string' && note !== '' ? note : '(no reason given)';
      skipReasons[reason] = (skipReasons[reason] ?? 0) + 1;
    } else if (event.type === 'test:pass') passed += 1;
    else failed += 1;
  }
  yield `${JSON.stringify({ passed, failed, skipped, skipReasons, fileMs })}\n`;
}

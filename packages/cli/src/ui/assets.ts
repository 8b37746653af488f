/**
 * The dashboard's stylesheet and its one script, served from the package
 * (`/assets/...`): the Content-Security-Policy allows no inline script or style.
 */

export const stylesheet = `
:root { color-scheme: light; --ink: #1d232b; --muted: #5d6875; --line: #d9dee4; --accent: #1f5fbf; --bad: #b3261e; --ok: #1e7a3c; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, sans-serif; color: var(--ink); background: #f6f7f9; }
header { display: flex; gap: 1.5rem; align-items: center; padding: .6rem 1.2rem; background: #1d232b; color: #fff; }
header a { color: #dbe6f5; text-decoration: none; }
header a[aria-current="page"] { color: #fff; font-weight: 600; border-bottom: 2px solid #fff; }
header .brand { font-weight: 700; color: #fff; }
header form { margin-left: auto; }
main { padding: 1rem 1.2rem 2rem; max-width: 1200px; }
h1 { font-size: 1.3rem; margin: .2rem 0 1rem; }
h2 { font-size: 1.05rem; margin: 1.4rem 0 .5rem; }
table { border-collapse: collapse; width: 100%; background: #fff; border: 1px solid var(--line); }
th, td { text-align: left; padding: .35rem .6rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: #eef1f4; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
a { color: var(--accent); }
pre { background: #fff; border: 1px solid var(--line); padding: .7rem; overflow: auto; max-height: 28rem; }
code, pre, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 13px; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1rem; background: #fff; border: 1px solid var(--line); padding: .7rem; }
dt { color: var(--muted); }
dd { margin: 0; }
input, select, button { font: inherit; padding: .25rem .5rem; }
button.danger { background: var(--bad); color: #fff; border: 0; padding: .4rem .9rem; border-radius: 3px; }
button.primary { background: var(--accent); color: #fff; border: 0; padding: .4rem .9rem; border-radius: 3px; }
.muted { color: var(--muted); }
.state-dead, .status-dead, .status-missing-parent, .status-not-handled { color: var(--bad); font-weight: 600; }
.state-redriven, .status-handled, .status-redriven { color: var(--ok); }
.pager { margin: .8rem 0; display: flex; gap: 1rem; }
.tree, .tree ul { list-style: none; padding-left: 1.2rem; margin: 0; }
.tree { padding-left: 0; background: #fff; border: 1px solid var(--line); padding: .6rem; }
.tree li { padding: .15rem 0; }
.tree .kind { display: inline-block; min-width: 6.5rem; color: var(--muted); }
.tree .at { color: var(--muted); font-variant-numeric: tabular-nums; }
.notice { padding: .6rem .8rem; background: #fff4e5; border: 1px solid #f0c36d; margin-bottom: 1rem; }
form.inline { display: inline; }
`;

/** Projections page: follows the server-sent lag and writes it into the table (text only). */
export const liveScript = `
const source = new EventSource('/projections/live');
source.addEventListener('projections', (event) => {
  const states = JSON.parse(event.data);
  for (const row of document.querySelectorAll('tr[data-projection]')) {
    const state = states.find((s) => s.name === row.dataset.projection);
    if (!state) continue;
    for (const cell of row.querySelectorAll('[data-field]')) {
      cell.textContent = String(state[cell.dataset.field]);
    }
  }
  const stamp = document.getElementById('live-at');
  if (stamp) stamp.textContent = new Date().toISOString();
  document.body.dataset.liveUpdates = String(Number(document.body.dataset.liveUpdates || '0') + 1);
});
`;

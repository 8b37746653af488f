/** @jsxImportSource hono/jsx */
import { type Child, createContext, useContext } from 'hono/jsx';

export type Section = 'streams' | 'projections' | 'dead-letters' | 'workflows' | 'outbox' | 'trace';

const labels: Record<Section, string> = {
  streams: 'Streams',
  projections: 'Projections',
  'dead-letters': 'Dead letters',
  workflows: 'Workflows',
  outbox: 'Outbox',
  trace: 'Trace',
};

/** The sections a dashboard serves, in the navigation's order; the first is its home (`/` leads there). */
export type Sections = readonly [Section, ...Section[]];

/** Every section: the dashboard over a database. */
export const allSections: Sections = ['streams', 'projections', 'dead-letters', 'workflows', 'outbox', 'trace'];

/** A section's page: `/streams`, `/dead-letters`... */
export const sectionPath = (section: Section) => `/${section}`;

const SectionsContext = createContext<Sections>(allSections);

/** Renders `children` for a dashboard serving `sections` (the navigation and the links show only those). */
export const SectionsProvider = SectionsContext.Provider;

/** The sections the dashboard being rendered serves. */
export const useSections = (): Sections => useContext(SectionsContext);

/** Every page's frame: the navigation (the sections served), a title, and the page's content. */
export function Layout(props: { title: string; section: Section; children: Child; scripts?: string[] }) {
  const sections = useSections();
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>{`${props.title} · factline`}</title>
        <link rel="stylesheet" href="/assets/style.css" />
        {(props.scripts ?? []).map((src) => (
          <script src={src} defer />
        ))}
      </head>
      <body>
        <header>
          <a class="brand" href={sectionPath(sections[0])}>
            factline
          </a>
          {sections.map((name) => (
            <a href={sectionPath(name)} aria-current={name === props.section ? 'page' : undefined}>
              {labels[name]}
            </a>
          ))}
          {sections.includes('trace') ? (
            <form method="get" action="/trace">
              <input name="correlationId" placeholder="correlation id" aria-label="correlation id" />
            </form>
          ) : null}
        </header>
        <main>
          <h1>{props.title}</h1>
          {props.children}
        </main>
      </body>
    </html>
  );
}

/** A date as ISO text in a `<time>`. */
export const Time = (props: { at: Date | string | null | undefined }) => {
  if (props.at === null || props.at === undefined) return <span class="muted">—</span>;
  const iso = typeof props.at === 'string' ? props.at : props.at.toISOString();
  return <time datetime={iso}>{iso.replace('T', ' ').replace('Z', '')}</time>;
};

/** A value as indented JSON in a `<pre>` (escaped like every other text). */
export const Json = (props: { value: unknown; label?: string }) => (
  <pre data-label={props.label}>{JSON.stringify(props.value, null, 2)}</pre>
);

/** A query string from the defined entries. */
export function query(params: Record<string, string | number | undefined>): string {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) if (value !== undefined) search.set(key, String(value));
  const text = search.toString();
  return text === '' ? '' : `?${text}`;
}

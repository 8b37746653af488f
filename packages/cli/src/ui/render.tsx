/** @jsxImportSource hono/jsx */
import type { Context } from 'hono';
import type { Child } from 'hono/jsx';
import { Layout, type Sections, SectionsProvider } from './layout.tsx';

/** Answers with a whole page: `<!DOCTYPE html>` and `element`. */
export type RenderPage = (c: Context, element: Child, status?: 200 | 404 | 409) => Response | Promise<Response>;

/** Answers 404 with the not-found page saying `what`. */
export type RenderNotFound = (c: Context, what: string) => Response | Promise<Response>;

/** `page` and `notFound` of a dashboard serving `sections`: its pages link to those only. */
export function pageRenderers(sections: Sections): { page: RenderPage; notFound: RenderNotFound } {
  const page: RenderPage = (c, element, status = 200) =>
    c.html(`<!DOCTYPE html>${String(<SectionsProvider value={sections}>{element}</SectionsProvider>)}`, status);
  const notFound: RenderNotFound = (c, what) =>
    page(
      c,
      <Layout title="Not found" section="streams">
        <p>{what}</p>
      </Layout>,
      404,
    );
  return { page, notFound };
}

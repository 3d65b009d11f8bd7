// elkjs as a file of its own (dist/web/elk.js, built by scripts/build-web.mjs): 1.5 MB that only the
// topology needs, loaded by it on first use, so no other page parses it. The bundled build runs the
// layout in the page's thread (no worker, no eval): it works under the manager's CSP.
export { default } from 'elkjs/lib/elk.bundled.js';

// Writes docs/errors.md from the error catalogue in src/errors.ts (run after adding a code; a test checks they agree).
import { writeFileSync } from 'node:fs';
import { register } from 'tsx/esm/api';

register();
const { errorCatalogue } = await import('../src/errors.ts');

const rows = Object.entries(errorCatalogue).map(
  ([code, { status, summary }]) => `| \`${code}\` | ${status ?? '—'} | ${summary.replaceAll('|', '\\|')} |`,
);
const text = `# Error codes

Every error nodefpm raises on purpose is a \`NodefpmError\` with a stable \`code\` from this table, and
\`status\`, the HTTP status a request gets when the error ends it (— when it never maps to a response).
Codes do not change meaning between releases; new ones are added at the end of their group.

\`\`\`ts
import { isNodefpmError } from 'nodefpm';
try { await req.json(); } catch (error) { if (isNodefpmError(error, 'NODEFPM_BODY_MALFORMED')) { /* 400 */ } }
\`\`\`

This file is generated from \`src/errors.ts\` by \`node scripts/gen-errors-doc.mjs\`.

| code | status | meaning |
|---|---|---|
${rows.join('\n')}
`;
writeFileSync(new URL('../docs/errors.md', import.meta.url), text);
console.log(`docs/errors.md: ${rows.length} codes`);

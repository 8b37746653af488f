// Imports every entry of every installed @factline package with plain Node (no
// loader, no source condition) and prints how many names each one exports.
import { readdirSync, readFileSync } from 'node:fs';

const scope = new URL('./node_modules/@factline/', import.meta.url);
const counts = {};
for (const dir of readdirSync(scope)) {
  const manifest = JSON.parse(readFileSync(new URL(`${dir}/package.json`, scope), 'utf8'));
  for (const key of Object.keys(manifest.exports)) {
    const specifier = manifest.name + key.slice(1);
    counts[specifier] = Object.keys(await import(specifier)).length;
  }
}
console.log(JSON.stringify(counts));

// Reads a multi-document YAML stream (helm template output) on stdin, validates every object
// against the Kubernetes 1.27 schemas of kubernetes-models, and prints {"objects": [...],
// "errors": [...], "unchecked": [...]} as JSON. Run with NODE_PATH pointing at node_modules.
'use strict';
const yaml = require('js-yaml');
let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (d) => { input += d; });
process.stdin.on('end', () => {
    const objects = yaml.loadAll(input).filter((o) => o);
    const errors = [], unchecked = [];
    for (const o of objects) {
        const where = `${o.kind}/${o.metadata && o.metadata.name}`;
        if (typeof o.apiVersion !== 'string' || !o.kind) { unchecked.push(where); continue; }
        const slash = o.apiVersion.indexOf('/');
        const mod = slash < 0 ? 'v1' : o.apiVersion;  // core group lives in kubernetes-models/v1
        let Kind;
        try {
            Kind = require(`kubernetes-models/${mod}`)[o.kind];
        } catch (e) {
            Kind = undefined;
        }
        if (!Kind) { unchecked.push(where); continue; }
        try {
            new Kind(o).validate();
        } catch (e) {
            errors.push(`${where}: ${e.message}`);
        }
    }
    process.stdout.write(JSON.stringify({objects, errors, unchecked}));
});

// What client-node's config.js imports from its generated package index, from the modules that
// define them (see lean-client.ts). Nothing else: a missing name must fail linking.
export { createConfiguration } from '@kubernetes/client-node/dist/gen/configuration.js';
export { ServerConfiguration } from '@kubernetes/client-node/dist/gen/servers.js';

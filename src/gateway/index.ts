// The built-in HTTP front's public API: createGateway and its options, the address helpers the CLI needs, and the params builder.

export { Gateway, createGateway, type ExtraParams, type GatewayOptions, type GatewayStats } from './gateway.js';
export { formatHttpAddress, parseHttpAddress, upstreamFor, urlFor, type GatewayAddress, type HttpListenAddress } from './address.js';
export { buildParams, type HttpSide, type ParamSettings, type ScriptParams, type TrustProxy } from './params.js';
export type { ScriptOptions } from './script.js';
export type { SendfileOptions } from './sendfile.js';
export { parseTarget, type ParsedTarget } from './uri.js';
export { NODEFPM_VERSION } from './version.js';

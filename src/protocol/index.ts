// The FastCGI protocol layer: constants, record and name-value codecs, the incremental parser. Pure, no I/O.

export * from './constants.js';
export * from './record.js';
export * from './name-value.js';
export * from './parser.js';

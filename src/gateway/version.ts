// nodefpm's version for SERVER_SOFTWARE: a constant, since the CommonJS build cannot read package.json through import.meta (version.test.ts keeps the two equal).

export const NODEFPM_VERSION = '0.1.0';

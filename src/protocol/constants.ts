// FastCGI 1.0 constants under the specification's names (section 8), as `as const` objects.

export const FCGI_VERSION_1 = 1;
/** Bytes in every record header. */
export const HEADER_LENGTH = 8;
/** The largest contentLength a record can carry (16 bits). */
export const MAX_CONTENT_LENGTH = 65535;
/** The request id of management records. */
export const NULL_REQUEST_ID = 0;
/** FCGI_KEEP_CONN, the one flag of BEGIN_REQUEST. */
export const KEEP_CONN = 1;

export const RecordType = {
  BeginRequest: 1,
  AbortRequest: 2,
  EndRequest: 3,
  Params: 4,
  Stdin: 5,
  Stdout: 6,
  Stderr: 7,
  Data: 8,
  GetValues: 9,
  GetValuesResult: 10,
  UnknownType: 11,
} as const;
export type RecordType = (typeof RecordType)[keyof typeof RecordType];
/** FCGI_MAXTYPE: types above it are unknown to FastCGI 1.0. */
export const MAX_RECORD_TYPE = RecordType.UnknownType;

export const Role = {
  Responder: 1,
  Authorizer: 2,
  Filter: 3,
} as const;
export type Role = (typeof Role)[keyof typeof Role];

export const ProtocolStatus = {
  RequestComplete: 0,
  CantMpxConn: 1,
  Overloaded: 2,
  UnknownRole: 3,
} as const;
export type ProtocolStatus = (typeof ProtocolStatus)[keyof typeof ProtocolStatus];

/** The variable names FCGI_GET_VALUES may ask about (section 4.1). */
export const ValueName = {
  MaxConns: 'FCGI_MAX_CONNS',
  MaxReqs: 'FCGI_MAX_REQS',
  MpxsConns: 'FCGI_MPXS_CONNS',
} as const;

const recordTypeNames: Record<number, string> = Object.fromEntries(
  Object.entries(RecordType).map(([name, value]) => [value, name]),
);

/** A readable name for a record type, for logs: "Stdin", or "type 42". */
export function recordTypeName(type: number): string {
  return recordTypeNames[type] ?? `type ${type}`;
}

const roleNames: Record<number, string> = Object.fromEntries(Object.entries(Role).map(([name, value]) => [value, name]));

/** A readable name for a role, for logs: "Responder", or "role 7". */
export function roleName(role: number): string {
  return roleNames[role] ?? `role ${role}`;
}

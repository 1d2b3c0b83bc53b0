// Unit tests for src/protocol/constants.ts (values from section 8 of the FastCGI spec, readable names) and the index barrel.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import {
  FCGI_VERSION_1,
  HEADER_LENGTH,
  KEEP_CONN,
  MAX_CONTENT_LENGTH,
  MAX_RECORD_TYPE,
  NULL_REQUEST_ID,
  ProtocolStatus,
  RecordType,
  Role,
  ValueName,
  recordTypeName,
  roleName,
} from './constants.js';
import * as protocol from './index.js';

describe('constants (spec section 8)', () => {
  it('header and record limits', () => {
    assert.equal(FCGI_VERSION_1, 1);
    assert.equal(HEADER_LENGTH, 8);
    assert.equal(MAX_CONTENT_LENGTH, 65535);
    assert.equal(NULL_REQUEST_ID, 0);
    assert.equal(KEEP_CONN, 1);
  });

  it('record types 1..11, FCGI_MAXTYPE = 11', () => {
    assert.deepEqual(
      { ...RecordType },
      {
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
      },
    );
    assert.equal(MAX_RECORD_TYPE, 11);
  });

  it('roles, protocol statuses and GET_VALUES names', () => {
    assert.deepEqual({ ...Role }, { Responder: 1, Authorizer: 2, Filter: 3 });
    assert.deepEqual({ ...ProtocolStatus }, { RequestComplete: 0, CantMpxConn: 1, Overloaded: 2, UnknownRole: 3 });
    assert.deepEqual({ ...ValueName }, { MaxConns: 'FCGI_MAX_CONNS', MaxReqs: 'FCGI_MAX_REQS', MpxsConns: 'FCGI_MPXS_CONNS' });
  });
});

describe('readable names', () => {
  it('recordTypeName names the known types and numbers the rest', () => {
    assert.equal(recordTypeName(1), 'BeginRequest');
    assert.equal(recordTypeName(5), 'Stdin');
    assert.equal(recordTypeName(11), 'UnknownType');
    assert.equal(recordTypeName(0), 'type 0');
    assert.equal(recordTypeName(12), 'type 12');
    assert.equal(recordTypeName(255), 'type 255');
  });

  it('roleName names the three roles and numbers the rest', () => {
    assert.equal(roleName(1), 'Responder');
    assert.equal(roleName(2), 'Authorizer');
    assert.equal(roleName(3), 'Filter');
    assert.equal(roleName(0), 'role 0');
    assert.equal(roleName(7), 'role 7');
  });
});

describe('index barrel', () => {
  it('re-exports the constants, codecs and parser', () => {
    assert.equal(protocol.FCGI_VERSION_1, 1);
    assert.equal(protocol.RecordType.Params, 4);
    for (const name of [
      'encodeRecord',
      'encodeStream',
      'writeStream',
      'streamSize',
      'readHeader',
      'writeHeader',
      'encodeBeginRequest',
      'decodeBeginRequest',
      'encodeEndRequest',
      'writeEndRequest',
      'decodeEndRequest',
      'encodeUnknownType',
      'decodeUnknownType',
      'encodeAbortRequest',
      'encodePairs',
      'encodeParams',
      'decodePairs',
      'decodePairList',
      'forEachPair',
      'RecordParser',
      'recordTypeName',
      'roleName',
    ] as const) {
      assert.equal(typeof protocol[name], 'function', `${name} is exported`);
    }
  });
});

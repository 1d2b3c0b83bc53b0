// Unit tests of the validator's pure rules: params a CGI/1.1 app relies on, and the CGI head an app writes.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Role } from '../../protocol/index.js';
import { checkBodyLength, checkCgiHead, checkParams, type ValidateCode } from './checks.js';

const good: Record<string, string> = {
  GATEWAY_INTERFACE: 'CGI/1.1',
  REQUEST_METHOD: 'GET',
  REQUEST_URI: '/app/x?y=1',
  SCRIPT_NAME: '/app',
  PATH_INFO: '/x',
  QUERY_STRING: 'y=1',
  SERVER_PROTOCOL: 'HTTP/1.1',
  SERVER_NAME: 'localhost',
  SERVER_PORT: '80',
  HTTP_HOST: 'localhost',
};

function codes(params: Record<string, string | undefined>, role?: number): ValidateCode[] {
  const lookup = (name: string): string | undefined => params[name];
  return checkParams(lookup, role).map((finding) => finding.code);
}

test('params as nginx, Apache, lighttpd and h2o send them pass', () => {
  assert.deepEqual(codes(good), []);
  // nginx: empty CONTENT_LENGTH/CONTENT_TYPE, SCRIPT_NAME is the whole path, no PATH_INFO.
  assert.deepEqual(codes({ ...good, SCRIPT_NAME: '/', PATH_INFO: undefined, CONTENT_LENGTH: '', CONTENT_TYPE: '', REQUEST_URI: '/' }), []);
  // h2o: no GATEWAY_INTERFACE, SCRIPT_NAME "" at the root.
  assert.deepEqual(codes({ ...good, GATEWAY_INTERFACE: undefined, SCRIPT_NAME: '', PATH_INFO: '/x' }), []);
  // lighttpd: HTTP_CONTENT_LENGTH equal to CONTENT_LENGTH.
  assert.deepEqual(codes({ ...good, REQUEST_METHOD: 'POST', CONTENT_LENGTH: '5', HTTP_CONTENT_LENGTH: '5' }), []);
  assert.deepEqual(codes({ ...good, SERVER_PROTOCOL: 'HTTP/2.0' }), []);
  assert.deepEqual(codes({ ...good, SERVER_PROTOCOL: 'HTTP/2' }), []);
});

test('the Authorizer role needs no SCRIPT_NAME, PATH_INFO nor CONTENT_LENGTH', () => {
  assert.deepEqual(codes({ ...good, SCRIPT_NAME: undefined, PATH_INFO: undefined }, Role.Authorizer), []);
  assert.deepEqual(codes({ ...good, SCRIPT_NAME: undefined, PATH_INFO: undefined }, Role.Responder), ['NODEFPM_VALIDATE_PARAM_MISSING']);
});

test('each missing param is NODEFPM_VALIDATE_PARAM_MISSING, naming it', () => {
  for (const name of ['REQUEST_METHOD', 'SERVER_PROTOCOL', 'QUERY_STRING', 'SERVER_NAME', 'SERVER_PORT', 'SCRIPT_NAME']) {
    const findings = checkParams((key) => (key === name ? undefined : good[key]));
    assert.equal(findings.length, 1, name);
    assert.equal(findings[0]!.code, 'NODEFPM_VALIDATE_PARAM_MISSING');
    assert.match(findings[0]!.message, new RegExp(name));
  }
  assert.deepEqual(codes({ ...good, REQUEST_METHOD: '' }), ['NODEFPM_VALIDATE_PARAM_MISSING']);
});

test('each malformed param is NODEFPM_VALIDATE_PARAM_INVALID', () => {
  const cases: Array<Record<string, string>> = [
    { REQUEST_METHOD: 'GE T' },
    { SERVER_PROTOCOL: 'HTTP1.1' },
    { SERVER_PORT: '80a' },
    { GATEWAY_INTERFACE: 'CGI/2.0' },
    { SCRIPT_NAME: 'app' },
    { PATH_INFO: 'x' },
    { SCRIPT_NAME: '/app/', PATH_INFO: '/x' },
    { REQUEST_URI: 'x/y' },
    { CONTENT_LENGTH: '12abc' },
    { CONTENT_LENGTH: '-1' },
  ];
  for (const change of cases) assert.deepEqual(codes({ ...good, ...change }), ['NODEFPM_VALIDATE_PARAM_INVALID'], JSON.stringify(change));
});

test('HTTP_CONTENT_* disagreeing with CONTENT_* is NODEFPM_VALIDATE_PARAM_CONFLICT', () => {
  assert.deepEqual(codes({ ...good, CONTENT_LENGTH: '5', HTTP_CONTENT_LENGTH: '6' }), ['NODEFPM_VALIDATE_PARAM_CONFLICT']);
  assert.deepEqual(codes({ ...good, HTTP_CONTENT_LENGTH: '6' }), ['NODEFPM_VALIDATE_PARAM_CONFLICT']);
  assert.deepEqual(codes({ ...good, CONTENT_TYPE: 'text/plain', HTTP_CONTENT_TYPE: 'text/html' }), ['NODEFPM_VALIDATE_PARAM_CONFLICT']);
  assert.deepEqual(codes({ ...good, CONTENT_TYPE: 'text/plain', HTTP_CONTENT_TYPE: 'text/plain' }), []);
});

test('checkBodyLength compares what arrived with a declared CONTENT_LENGTH only', () => {
  assert.equal(checkBodyLength('5', 5), null);
  assert.equal(checkBodyLength(undefined, 9), null);
  assert.equal(checkBodyLength('', 9), null);
  assert.equal(checkBodyLength('5', 4)?.code, 'NODEFPM_VALIDATE_BODY_LENGTH');
});

function headCodes(head: string): ValidateCode[] {
  return checkCgiHead(head).findings.map((finding) => finding.code);
}

test('well-formed CGI heads pass and give their status and Content-Length', () => {
  assert.deepEqual(checkCgiHead('Status: 201 Created\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\n'), {
    status: 201,
    contentLength: 5,
    findings: [],
  });
  assert.equal(checkCgiHead('Location: http://example.com/\r\n\r\n').status, 302);
  assert.equal(checkCgiHead('Content-Type: text/plain\n\n').status, 200);
  assert.deepEqual(headCodes('Status: 304 Not Modified\r\nContent-Length: 10\r\n\r\n'), [], '304 may carry the length of what did not change');
  assert.deepEqual(headCodes('Status: 200 OK\r\nX-Latin: caf\u00e9\r\n\r\n'), []);
});

test('each broken head rule has its code', () => {
  const cases: Array<[string, ValidateCode]> = [
    ['Status: 200 OK\r\n', 'NODEFPM_VALIDATE_HEAD_MALFORMED'],
    ['\r\n', 'NODEFPM_VALIDATE_HEAD_MALFORMED'],
    ['Status: 200 OK\r\nno colon here\r\n\r\n', 'NODEFPM_VALIDATE_HEAD_MALFORMED'],
    ['Status: 200 OK\r\n folded\r\n\r\n', 'NODEFPM_VALIDATE_HEAD_MALFORMED'],
    ['Status: 200 OK\r\n\r\nX: y\r\n\r\n', 'NODEFPM_VALIDATE_HEAD_MALFORMED'],
    ['Status: 200 OK\r\nBad Name: x\r\n\r\n', 'NODEFPM_VALIDATE_HEADER_NAME'],
    ['Status: 200 OK\r\nX: a\u0001b\r\n\r\n', 'NODEFPM_VALIDATE_HEADER_VALUE'],
    ['Status: 200 OK\r\nX: \u20ac\r\n\r\n', 'NODEFPM_VALIDATE_HEADER_VALUE'],
    ['Status: 99 Low\r\n\r\n', 'NODEFPM_VALIDATE_STATUS'],
    ['Status: 101 Switching Protocols\r\n\r\n', 'NODEFPM_VALIDATE_STATUS'],
    ['Status: 600 High\r\n\r\n', 'NODEFPM_VALIDATE_STATUS'],
    ['Status: OK\r\n\r\n', 'NODEFPM_VALIDATE_STATUS'],
    ['Status: 200 OK\r\nStatus: 201 Created\r\n\r\n', 'NODEFPM_VALIDATE_STATUS'],
    ['Status: 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n', 'NODEFPM_VALIDATE_HOP_BY_HOP'],
    ['Status: 200 OK\r\nConnection: close\r\n\r\n', 'NODEFPM_VALIDATE_HOP_BY_HOP'],
    ['Status: 200 OK\r\nKeep-Alive: timeout=5\r\n\r\n', 'NODEFPM_VALIDATE_HOP_BY_HOP'],
    ['Status: 200 OK\r\nUpgrade: websocket\r\n\r\n', 'NODEFPM_VALIDATE_HOP_BY_HOP'],
    ['Status: 200 OK\r\nContent-Length: ten\r\n\r\n', 'NODEFPM_VALIDATE_CONTENT_LENGTH'],
    ['Status: 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n', 'NODEFPM_VALIDATE_CONTENT_LENGTH'],
    ['Status: 204 No Content\r\nContent-Length: 0\r\n\r\n', 'NODEFPM_VALIDATE_CONTENT_LENGTH'],
  ];
  for (const [head, code] of cases) assert.deepEqual(headCodes(head), [code], JSON.stringify(head));
});

#!/usr/bin/python3
"""Capture AWS Signature Version 4 (EC2 Query API) known-answer vectors from REAL clients.

Regenerate (from the repository root; needs Debian's python3-boto, python3-botocore,
python3-awscrt and awscli):

    /usr/bin/python3 test/clients/capture_sigv4_vectors.py > sigv4/testdata/vectors.json

The test suite (test/vectors_test.go) captures again on every run and compares with the committed
file through compare_vectors.py, which ignores what changes from run to run (timestamps and the
signatures over them, the port): a Debian client update that signs differently fails there.

Use /usr/bin/python3 (Debian's interpreter, where boto 2.49 and botocore live), not a pyenv
python3 that may come first on PATH, and Debian's /usr/bin/aws.  Options: ``--port N`` (capture
server port, default 18774; ``--port 0`` picks a random free port; if the default is busy a random
port is used and the host part of the vectors changes).  The parts shared with
capture_sigv2_vectors.py (capture server, fake keys, trap filters, JSON output) are in
capturelib.py, imported from the script's directory.

What it does
------------
* Starts a loopback capture HTTP server (capturelib) on 127.0.0.1 that records, per request, the
  method, the raw request target exactly as received (from the request line, no decoding), every
  header line exactly as received (raw name, value without the OWS around it, in order,
  duplicates kept) and the raw body bytes, and answers with a tiny EC2 XML response so the
  clients do not error.
* Drives real clients against it with fixed fake 32-hex-char (Keystone-style) keys:
  - botocore, default config (SigV4, POST form body), in BOTH signer flavours that a botocore
    user gets by default: "botocore-crt" = botocore with python3-awscrt installed (Debian installs
    it with awscli; botocore then signs with CrtSigV4Auth, i.e. the aws-c-auth C library) and
    "botocore-py" = botocore without awscrt (the pip default; pure-Python SigV4Auth; selected here
    by swapping botocore.auth.AUTH_TYPE_MAPS['v4'/'v4-query'] back to the Python classes for the
    call, which is what BOTO_DISABLE_CRT=true does).  Endpoints http://127.0.0.1:PORT/ and
    http://127.0.0.1:PORT/services/Cloud/, regions RegionOne and us-east-1.
  - botocore presigned URLs (generate_presigned_url('describe_regions'/'describe_instances',
    ExpiresIn=300)), then fetched with a plain http.client GET; what arrives is recorded.
  - boto 2.49 EC2Connection with default settings (SigV4, capability 'hmac-v4'), endpoint
    127.0.0.1 and localhost, path /services/Cloud and /, POST (boto's own calls) and GET
    (make_request(..., verb='GET')).
  - endpoint paths that AWS clients sign in their AWS form (PATHS: /a%7Eb/, /a%20b/,
    /services//Cloud/, /services/./Cloud/, /services/Cloud/../Cloud/): botocore POST and
    presigned (HttpMethod=GET) with both signers, one presigned URL fetched with GET but signed
    for POST, and boto 2 POST.
  - /usr/bin/aws (awscli v2, vendored botocore) as a subprocess with env credentials and a
    throwaway HOME; only the raw request can be recorded, so its canonical request / string to
    sign / signature are COMPUTED here with botocore's SigV4Auth from the raw request (the
    computed signature must equal the one awscli sent).
* Captures the client's own canonical request and string to sign: for the pure-Python signers
  by wrapping SigV4Auth / HmacAuthV4Handler .canonical_request/.string_to_sign/.signature; for
  the CRT signer from aws-c-auth's own INFO log lines ("Signing successfully built canonical
  request ... with contents"), enabled with awscrt.io.init_logging into a temporary file.
* Adds NEGATIVE vectors ("valid": false, "want_error" one of the ERROR_KINDS below) derived from
  captured ones.  Re-signed negatives are re-signed with this script's own small HMAC code
  (resign(): hashlib/hmac, not botocore), which is the same code as the independent checker.
* Self-checks everything and fails loudly (non-zero exit) on any disagreement:
  - independent signature: sts = "AWS4-HMAC-SHA256\\n" + amz_date + "\\n" + scope + "\\n" +
    sha256hex(canonical_request), key chain "AWS4"+secret -> date -> region -> service ->
    "aws4_request" (hashlib/hmac directly) must reproduce string_to_sign and signature;
  - independent canonical request rebuilt from the recorded wire request (method; path exactly
    as received, or if that does not rebuild it, its AWS form (aws_path(): dot and empty
    segments removed, then percent-encoded once more); query: split on &, percent-decode (no
    '+' -> space; no capture contains a raw '+'), RFC 3986 re-encode names and values, sort by
    encoded name then value, presigned drops X-Amz-Signature; headers named in SignedHeaders,
    values trimmed and inner whitespace collapsed, duplicates joined with ','; payload = sha256
    hex of the raw body, for presigned URLs also UNSIGNED-PAYLOAD is tried) must equal the
    client's canonical request.  Host candidates tried in order: Host as received, Host without
    its port, Host with the server port added; which one matched (and the path's AWS form, if
    that did) is written into "note";
  - a small reference verifier must accept every valid vector and return want_error for every
    negative one (check order: malformed_authorization, expires_too_long, scope_date_mismatch,
    missing_host, unsigned_payload_with_body, signature_mismatch; host candidates: as received,
    then without port; paths: as received, then the AWS form);
  - the AWS SigV4 test suite copied in sigv4/testdata/aws-testsuite/ (if present): every .authz
    signature must be HMAC(.sts) and the .sts must hash the .creq.

Output: a JSON array on stdout (2-space indent, fixed key order, non-ASCII as \\u escapes),
sorted by "name".  Non-deterministic parts: X-Amz-Date and everything derived from it
(signatures, canonical request, string to sign, credential date), the capture port if the
default one is busy, botocore's/awscli's amz-sdk-invocation-id (random UUID) and awscli's
User-Agent (contains the kernel version).  X-Amz-Date values are old by the time the file is
used: Go tests must inject the clock (or skip the time-window and expiry checks).

Vector fields: name, client (library + version read at run time), method, target (raw request
target), headers ([[name, value], ...] as received), body (raw body; ASCII), access_key, secret
(the secret the *verifier* has stored for access_key), canonical_request, string_to_sign,
signature (hex), amz_date, region, service, signed_headers (as in the request), presigned,
valid, want_error (only when valid is false), note.  canonical_request / string_to_sign /
signature are always what was really signed: the client's for captured vectors and for
negatives changed after signing (so e.g. neg-boto2-post-x-amz-date-changed has an amz_date that
differs from line 2 of its string_to_sign), this script's for re-signed negatives.  Captured
vectors that a correct verifier must still refuse (the presigned URLs botocore signs for POST
but that are fetched with GET) keep their real-client name, have "valid": false and explain why
in "note".
"""

import argparse
import datetime
import hashlib
import hmac as _real_hmac
import http.client
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.parse

sys.dont_write_bytecode = True   # leave no __pycache__ next to the scripts in the tree
from capturelib import (BOTOCORE_FILTERS, CAPTURES, FILTERS, KEY_A, KEY_B,  # noqa: E402
                        CaptureError, CaptureHandler, ascii_str, boto2_filter_params,
                        boto2_get, botocore_client, check, check_unique_names, emit, log,
                        replace_once, request_vector, run_main, sanitise_environment,
                        start_server)

sanitise_environment(['EC2_'])   # before importing the clients: boto reads its config on import
try:
    import boto
    import boto.auth
    from boto.ec2.connection import EC2Connection
    from boto.regioninfo import RegionInfo
    import botocore
    import botocore.auth
    import botocore.compat
    import botocore.session
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
except ImportError as e:  # pragma: no cover
    sys.exit('capture_sigv4_vectors: %s; run with /usr/bin/python3 and install python3-boto '
             'python3-botocore' % e)

AWS_CLI = '/usr/bin/aws'
AWSCRT_PKG = 'python3-awscrt'


def dpkg_version(pkg):
    try:
        return subprocess.run(['dpkg-query', '-W', '-f=${Version}', pkg], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


BOTO2 = 'boto %s' % boto.__version__
BOTOCORE_PY = 'botocore %s (pure-Python SigV4Auth)' % botocore.__version__
if botocore.compat.HAS_CRT:
    import awscrt.io
    BOTOCORE_CRT = 'botocore %s + awscrt %s (CrtSigV4Auth)' % (
        botocore.__version__, dpkg_version(AWSCRT_PKG) or getattr(awscrt, '__version__', '?'))
else:
    BOTOCORE_CRT = None

# awscli gets a smaller JSON filter list (command line); still > 10 values and the trap chars.
AWSCLI_FILTERS = [
    {'Name': 'tag:Name', 'Values': ['a b~c+d*e;f/g=h&i \u00e9\u4e2d', 'x', 'y']},
    {'Name': 'key-name', 'Values': ['my key']},
] + [{'Name': 'tag:K%d' % i, 'Values': ['v%d' % i]} for i in range(3, 12)]

# Endpoint paths whose AWS form (aws_path) differs from the path sent: (slug, path, what).
PATHS = [
    ('escaped-tilde', '/a%7Eb/', 'an escape: signed encoded once more, as /a%257Eb/'),
    ('escaped-space', '/a%20b/', 'an escaped space: signed as /a%2520b/'),
    ('double-slash', '/services//Cloud/', 'an empty segment: signed without it'),
    ('dot-segment', '/services/./Cloud/', 'a . segment: signed without it'),
    ('dot-dot-segment', '/services/Cloud/../Cloud/', 'a .. segment: signed as /services/Cloud/'),
]

FIELD_ORDER = ['name', 'client', 'method', 'target', 'headers', 'body', 'access_key', 'secret',
               'canonical_request', 'string_to_sign', 'signature', 'amz_date', 'region',
               'service', 'signed_headers', 'presigned', 'valid', 'want_error', 'note']
ERROR_KINDS = {'signature_mismatch', 'missing_host', 'scope_date_mismatch',
               'malformed_authorization', 'expires_too_long', 'unsigned_payload_with_body'}
ALGO = 'AWS4-HMAC-SHA256'
UNSIGNED = 'UNSIGNED-PAYLOAD'
EMPTY_SHA256 = hashlib.sha256(b'').hexdigest()
MAX_EXPIRES = 604800


# --- recording of the clients' own canonical request / string to sign ---------------------------
SIGN_LOG = []


def _wrap(cls, meth, kind, extra=None):
    orig = getattr(cls, meth)

    def wrapper(self, *args, **kwargs):
        res = orig(self, *args, **kwargs)
        entry = {'kind': kind, 'value': res}
        if extra:
            entry.update(extra(self, *args))
        SIGN_LOG.append(entry)
        return res
    setattr(cls, meth, wrapper)


_wrap(botocore.auth.SigV4Auth, 'canonical_request', 'creq')
_wrap(botocore.auth.SigV4Auth, 'string_to_sign', 'sts',
      lambda self, req, creq: {'region': self._region_name, 'service': self._service_name,
                               'timestamp': req.context['timestamp']})
_wrap(botocore.auth.SigV4Auth, 'signature', 'sig')
_wrap(boto.auth.HmacAuthV4Handler, 'canonical_request', 'creq')
_wrap(boto.auth.HmacAuthV4Handler, 'string_to_sign', 'sts')
_wrap(boto.auth.HmacAuthV4Handler, 'signature', 'sig',
      lambda self, req, sts: {'region': req.region_name, 'service': req.service_name,
                              'host_attr': req.host})

PY_SIGNERS = {'v4': botocore.auth.SigV4Auth, 'v4-query': botocore.auth.SigV4QueryAuth}
_ORIG_SIGNERS = {k: botocore.auth.AUTH_TYPE_MAPS[k] for k in PY_SIGNERS}


class use_py_signers(object):
    """botocore without awscrt: the pure-Python SigV4Auth / SigV4QueryAuth."""

    def __enter__(self):
        botocore.auth.AUTH_TYPE_MAPS.update(PY_SIGNERS)

    def __exit__(self, *a):
        botocore.auth.AUTH_TYPE_MAPS.update(_ORIG_SIGNERS)


class CrtLog(object):
    """aws-c-auth logs the canonical request and string to sign at INFO level."""
    MARK = re.compile(r'\[INFO\] \[[^\]]*\] \[[^\]]*\] \[AuthSigning\] - \(id=[^)]*\) Signing '
                      r'successfully built (canonical request|string-to-sign) (?:for|via) '
                      r'algorithm SigV4, with contents \n')

    def __init__(self):
        # A log *file* is written through a buffered FILE* and only flushed at exit, so log to
        # the C-level stderr (unbuffered) and point fd 2 at a temporary file; Python's
        # sys.stderr keeps writing to the original stderr.
        fd, self.path = tempfile.mkstemp(prefix='crt-sigv4-', suffix='.log')
        self.saved = os.dup(2)
        sys.stderr.flush()
        sys.stderr = open(self.saved, 'w', buffering=1, closefd=False)
        os.dup2(fd, 2)
        os.close(fd)
        awscrt.io.init_logging(awscrt.io.LogLevel.Info, 'stderr')
        self.offset = 0

    def mark(self):
        self.offset = os.path.getsize(self.path)

    def entries(self, want):
        """Entries logged since mark(); waits for the (asynchronous) CRT logger."""
        deadline = time.time() + 10
        while True:
            with open(self.path, 'rb') as f:
                f.seek(self.offset)
                text = f.read().decode('utf-8')
            ms = list(self.MARK.finditer(text))
            if len(ms) >= want and re.search(r'\n\[[A-Z]+\] ', text[ms[-1].end():]):
                break
            if time.time() > deadline:
                raise CaptureError('CRT log: expected %d entries, got %d' % (want, len(ms)))
            time.sleep(0.05)
        out = []
        for i, m in enumerate(ms):
            end = re.search(r'\n\[[A-Z]+\] ', text[m.end():]).start() + m.end()
            block = text[m.end():end]
            check(block.endswith('\n'), 'CRT log block does not end with a newline: %r' % block)
            out.append({'kind': {'canonical request': 'creq', 'string-to-sign': 'sts'}[m.group(1)],
                        'value': block[:-1]})
        return out

    def close(self):
        os.dup2(self.saved, 2)
        try:
            os.unlink(self.path)
        except OSError:
            pass


CRT_LOG = None

# --- capture server (capturelib) with the header lines exactly as received ----------------------
class _Tee(object):
    def __init__(self, f):
        self._f = f
        self.buf = bytearray()

    def readline(self, *a):
        line = self._f.readline(*a)
        self.buf += line
        return line

    def read(self, *a):
        data = self._f.read(*a)
        self.buf += data
        return data

    def __getattr__(self, name):
        return getattr(self._f, name)


class _Capture(CaptureHandler):
    def setup(self):
        CaptureHandler.setup(self)
        self.rfile = _Tee(self.rfile)

    def handle_one_request(self):
        self.rfile.buf.clear()
        CaptureHandler.handle_one_request(self)

    def request_fields(self):
        head = bytes(self.rfile.buf)
        check(head.endswith(b'\r\n\r\n'), 'capture: header block not CRLF-terminated: %r' % head)
        headers = []
        for line in head[:-4].split(b'\r\n')[1:]:
            check(line[:1] not in (b' ', b'\t'), 'capture: obs-fold header line %r' % line)
            name, sep, value = line.partition(b':')
            check(sep and name and name == name.strip(), 'capture: bad header line %r' % line)
            headers.append([name.decode('ascii'), value.strip(b' \t').decode('latin-1')])
        return {'headers': headers}


# --- independent SigV4 code (hashlib/hmac only; also used to re-sign negatives) ----------------
def sha256hex(b):
    if isinstance(b, str):
        b = b.encode('utf-8')
    return hashlib.sha256(b).hexdigest()


def _h(key, msg):
    return _real_hmac.new(key, msg.encode('utf-8'), hashlib.sha256).digest()


def sign(secret, amz_date, date, region, service, creq):
    scope = '%s/%s/%s/aws4_request' % (date, region, service)
    sts = '%s\n%s\n%s\n%s' % (ALGO, amz_date, scope, sha256hex(creq))
    k = _h(('AWS4' + secret).encode('utf-8'), date)
    k = _h(k, region)
    k = _h(k, service)
    k = _h(k, 'aws4_request')
    return sts, _real_hmac.new(k, sts.encode('utf-8'), hashlib.sha256).hexdigest()


def rfc3986(s):
    return urllib.parse.quote(s, safe='-_.~')


def pct_decode(s):
    return urllib.parse.unquote_to_bytes(s).decode('utf-8')


def split_target(target):
    path, _, query = target.partition('?')
    return path, query


def query_pairs(query):
    out = []
    for part in query.split('&') if query else []:
        k, _, val = part.partition('=')
        out.append((pct_decode(k), pct_decode(val)))
    return out


def canonical_query(query, presigned):
    pairs = [(rfc3986(k), rfc3986(val)) for k, val in query_pairs(query)
             if not (presigned and k == 'X-Amz-Signature')]
    return '&'.join('%s=%s' % kv for kv in sorted(pairs))


def header_values(headers, lname):
    return [val for n, val in headers if n.lower() == lname]


def host_candidates(host, port):
    """Host as received, without its port, with the server's port added."""
    h = host.lower()
    cands = [('as-received', h)]
    m = re.match(r'^(\[[^\]]*\]|[^:\[\]]*):(\d+)$', h)
    if m:
        cands.append(('port-stripped', m.group(1)))
    elif port:
        cands.append(('port-added', '%s:%d' % (h, port)))
    return cands


def aws_path(path):
    """The path as botocore, boto 2 and the AWS spec (every service but S3) put it in the
    canonical request: empty and '.' segments removed, '..' removing the segment before it, a
    trailing '/' kept while a segment remains, then percent-encoded once more ('%' too, so
    /a%7Eb/ becomes /a%257Eb/).  Written here, not taken from botocore."""
    segs = []
    for seg in path.split('/'):
        if seg == '..':
            if segs:
                segs.pop()
        elif seg not in ('', '.'):
            segs.append(seg)
    out = ('/' if path.startswith('/') else '') + '/'.join(segs)
    if segs and path.endswith('/'):
        out += '/'
    return urllib.parse.quote(out, safe='/-_.~')


def path_candidates(target):
    """The path as received, then its AWS form if that differs."""
    path = split_target(target)[0] or '/'
    cands = [('as-received', path)]
    if aws_path(path) != path:
        cands.append(('aws-form', aws_path(path)))
    return cands


def rebuild_creq(method, target, headers, body, signed_headers, payload, host, path=None):
    """path: the path to put in the canonical request; default the target's, as received."""
    raw, query = split_target(target)
    check(re.match(r"^/([A-Za-z0-9/_.~-]|%[0-9A-F]{2})*$", raw or '/'),
          'path needs encoding: %r' % raw)
    lines = [method, path or raw or '/', canonical_query(query, presigned_query(query))]
    for name in signed_headers.split(';'):
        if name == 'host':
            vals = [host]
        else:
            vals = header_values(headers, name)
        lines.append('%s:%s' % (name, ','.join(' '.join(x.split()) for x in vals)))
    lines.append('')
    lines.append(signed_headers)
    lines.append(payload)
    return '\n'.join(lines)


def presigned_query(query):
    return any(k == 'X-Amz-Algorithm' for k, _ in query_pairs(query))


class Malformed(Exception):
    pass


def parse_auth(v):
    """-> dict(presigned, access_key, date, region, service, signed_headers, signature, amz_date,
    expires, separator); raises Malformed."""
    path, query = split_target(v['target'])
    qp = query_pairs(query)
    if presigned_query(query):
        d = {}
        for k, val in qp:
            if k.startswith('X-Amz-'):
                if k in d:
                    raise Malformed('duplicate %s' % k)
                d[k] = val
        for k in ('X-Amz-Algorithm', 'X-Amz-Credential', 'X-Amz-Date', 'X-Amz-SignedHeaders',
                  'X-Amz-Signature', 'X-Amz-Expires'):
            if k not in d:
                raise Malformed('missing %s' % k)
        if d['X-Amz-Algorithm'] != ALGO:
            raise Malformed('algorithm')
        cred, sh, sig, amz_date = (d['X-Amz-Credential'], d['X-Amz-SignedHeaders'],
                                   d['X-Amz-Signature'], d['X-Amz-Date'])
        if not re.match(r'^[0-9]+$', d['X-Amz-Expires']):
            raise Malformed('expires')
        expires, sep = int(d['X-Amz-Expires']), None
    else:
        auths = header_values(v['headers'], 'authorization')
        if len(auths) != 1 or not auths[0].startswith(ALGO + ' '):
            raise Malformed('authorization header')
        rest = auths[0][len(ALGO) + 1:]
        sep = ', ' if ', ' in rest else ','
        parts = {}
        for p in rest.split(','):
            k, eq, val = p.strip().partition('=')
            if not eq or k in parts:
                raise Malformed('component %r' % p)
            parts[k] = val
        if set(parts) != {'Credential', 'SignedHeaders', 'Signature'}:
            raise Malformed('components %s' % sorted(parts))
        cred, sh, sig = parts['Credential'], parts['SignedHeaders'], parts['Signature']
        dates = header_values(v['headers'], 'x-amz-date')
        if len(dates) != 1:
            raise Malformed('x-amz-date')
        amz_date, expires = dates[0], None
    cp = cred.split('/')
    if len(cp) != 5 or cp[4] != 'aws4_request' or not all(cp):
        raise Malformed('credential %r' % cred)
    if not re.match(r'^[0-9a-f]{64}$', sig):
        raise Malformed('signature %r' % sig)
    if not re.match(r'^\d{8}T\d{6}Z$', amz_date) or not re.match(r'^\d{8}$', cp[1]):
        raise Malformed('date')
    if not re.match(r'^[a-z0-9-]+(;[a-z0-9-]+)*$', sh):
        raise Malformed('signed headers %r' % sh)
    return {'presigned': presigned_query(query), 'access_key': cp[0], 'date': cp[1],
            'region': cp[2], 'service': cp[3], 'signed_headers': sh, 'signature': sig,
            'amz_date': amz_date, 'expires': expires, 'separator': sep}


def payload_candidates(v, a):
    if a['presigned']:
        return [sha256hex(v['body']), UNSIGNED]
    got = header_values(v['headers'], 'x-amz-content-sha256')
    if got:
        return [got[0]]
    return [sha256hex(v['body'])]


def reference_verify(v):
    """Return None if the vector verifies, else the failure kind."""
    try:
        a = parse_auth(v)
    except Malformed:
        return 'malformed_authorization'
    if a['presigned'] and not 1 <= a['expires'] <= MAX_EXPIRES:
        return 'expires_too_long'
    if a['date'] != a['amz_date'][:8]:
        return 'scope_date_mismatch'
    if 'host' not in a['signed_headers'].split(';'):
        return 'missing_host'
    pay = payload_candidates(v, a)
    if not a['presigned'] and pay[0] == UNSIGNED and v['body']:
        return 'unsigned_payload_with_body'
    if pay[0] not in (UNSIGNED, sha256hex(v['body'])):
        return 'signature_mismatch'
    if a['access_key'] != v['access_key']:
        return 'signature_mismatch'
    hosts = header_values(v['headers'], 'host')
    if len(hosts) != 1:
        return 'signature_mismatch'
    methods = [v['method']]
    if a['presigned'] and v['method'] == 'GET':
        methods.append('POST')  # as ec2proxy: botocore presigns EC2 URLs for POST
    for _, host in host_candidates(hosts[0], None):
        for _, path in path_candidates(v['target']):
            for method in methods:
                for p in pay:
                    creq = rebuild_creq(method, v['target'], v['headers'], v['body'],
                                        a['signed_headers'], p, host, path=path)
                    _, sig = sign(v['secret'], a['amz_date'], a['date'], a['region'],
                                  a['service'], creq)
                    if _real_hmac.compare_digest(sig, a['signature']):
                        return None
    return 'signature_mismatch'


# --- vector construction --------------------------------------------------------------------------
def run_capture(name, fn, signer):
    """signer: 'py' (botocore SigV4Auth / boto HmacAuthV4Handler), 'crt' or None (awscli)."""
    del CAPTURES[:]
    del SIGN_LOG[:]
    if signer == 'crt':
        CRT_LOG.mark()
    fn()
    check(len(CAPTURES) == 1, '%s: expected 1 request, got %d' % (name, len(CAPTURES)))
    if signer == 'py':
        got = SIGN_LOG[:]
    elif signer == 'crt':
        check(not SIGN_LOG, '%s: CRT client used a Python signer' % name)
        got = CRT_LOG.entries(2)
    else:
        check(not SIGN_LOG, '%s: unexpected in-process signing' % name)
        got = []
    kinds = [e['kind'] for e in got]
    want = {'py': ['creq', 'sts', 'sig'], 'crt': ['creq', 'sts'], None: []}[signer]
    check(kinds == want, '%s: signer log %s, want %s' % (name, kinds, want))
    return CAPTURES[0], {e['kind']: e for e in got}


def build(name, client, fn, key, note, signer='py', secret=None, port=None):
    """Run fn (one client call) and turn the captured request + signer log into a vector."""
    cap, sl = run_capture(name, fn, signer)
    v = request_vector(cap, name, client)
    v.update({
        'headers': [[ascii_str(n, 'header name', name), ascii_str(x, 'header value', name)]
                    for n, x in cap['headers']],
        'body': ascii_str(cap['body'], 'body', name),
        'access_key': key[0],
        'secret': secret or key[1],
    })
    a = parse_auth(v)
    check(a['access_key'] == key[0], '%s: access key %r' % (name, a['access_key']))
    check('+' not in split_target(v['target'])[1], '%s: raw + in the query' % name)
    hosts = header_values(v['headers'], 'host')
    check(len(hosts) == 1, '%s: Host headers %r' % (name, hosts))
    if signer is None:
        creq, sts, sig = botocore_compute(v, a)
        check(sig == a['signature'], '%s: botocore SigV4Auth recomputation %s != wire %s' %
              (name, sig, a['signature']))
        note += ('; canonical_request/string_to_sign/signature COMPUTED by botocore %s '
                 'SigV4Auth from the raw request (awscli internals not wrapped); computed '
                 'signature equals the one awscli sent' % botocore.__version__)
    else:
        creq, sts = sl['creq']['value'], sl['sts']['value']
        sig = sl['sig']['value'] if 'sig' in sl else a['signature']
        check(sig == a['signature'], '%s: client signature %s != wire %s' %
              (name, sig, a['signature']))
        if 'region' in sl['sts']:
            check((sl['sts']['region'], sl['sts']['service']) == (a['region'], a['service']),
                  '%s: botocore scope' % name)
        if 'region' in sl.get('sig', {}):
            check((sl['sig']['region'], sl['sig']['service']) == (a['region'], a['service']),
                  '%s: boto scope' % name)
    check(sts.split('\n')[1] == a['amz_date'], '%s: sts date %r vs %r' %
          (name, sts.split('\n')[1], a['amz_date']))
    v.update({
        'canonical_request': creq,
        'string_to_sign': sts,
        'signature': a['signature'],
        'amz_date': a['amz_date'],
        'region': a['region'],
        'service': a['service'],
        'signed_headers': a['signed_headers'],
        'presigned': a['presigned'],
        'valid': True,
    })
    # Which host / path / payload candidate rebuilds the client's canonical request from the
    # wire?
    found = find_candidate(v, a, v['method'], creq, hosts[0], port)
    signed_host = re.search(r'^host:(.*)$', creq, re.M)
    extra = ['Host header %r, signed host %r' % (hosts[0], signed_host.group(1) if signed_host
                                                 else None)]
    if a['separator']:
        extra.append('Authorization separator %r' % a['separator'])
    if found is None:
        v.update({'valid': False, 'want_error': 'signature_mismatch'})
        extra.append('REAL-WORLD INCOMPATIBILITY: the signed canonical request cannot be '
                     'rebuilt from what was sent (no host/payload candidate works)')
        signed_method = creq.split('\n')[0]
        if signed_method != v['method']:
            found = find_candidate(v, a, signed_method, creq, hosts[0], port)
            check(found, '%s: not rebuildable even with the signed method' % name)
            extra.append('the client signed method %s but the request was sent with %s; with '
                         'method %s it rebuilds (host candidate %s)' % (
                             signed_method, v['method'], signed_method, found[0]))
            if a['presigned'] and v['method'] == 'GET' and signed_method == 'POST':
                # ec2proxy checks a presigned GET as POST too (botocore presigns
                # EC2 URLs for the operation method), so this one is accepted.
                v['valid'] = True
                v.pop('want_error', None)
                extra[-2] = 'ec2proxy accepts it: a presigned GET is also checked as POST'
            if found[3] != 'as-received':
                extra.append('signed with the AWS form %r of the path sent, %r' % (
                    found[4], split_target(v['target'])[0]))
            found = None
    else:
        if found[3] != 'as-received':
            extra.append('canonical request rebuilt only with the AWS form %r of the path sent, '
                         '%r' % (found[4], split_target(v['target'])[0]))
        if found[0] != 'as-received':
            extra.append('canonical request rebuilt only with the host candidate %s (%r)' %
                         (found[0], found[1]))
            if found[0] == 'port-added':
                v.update({'valid': False, 'want_error': 'signature_mismatch'})
                extra.append('REAL-WORLD INCOMPATIBILITY: signed host carries a port the Host '
                             'header does not')
        if a['presigned']:
            extra.append('presigned payload hash %s' % ('UNSIGNED-PAYLOAD' if found[2] == UNSIGNED
                                                        else 'sha256("") (empty body)'
                                                        if found[2] == EMPTY_SHA256
                                                        else 'sha256(body)'))
    v['note'] = note + '; ' + '; '.join(extra)
    v['_ua'] = (header_values(v['headers'], 'user-agent') or [''])[0]
    v['_found'] = found
    return v


def find_candidate(v, a, method, creq, host, port):
    """(host label, host, payload, path label, path) of the first candidates that rebuild creq
    from the wire request with method, or None."""
    for label, h in host_candidates(host, port):
        for plabel, path in path_candidates(v['target']):
            for p in payload_candidates(v, a):
                if rebuild_creq(method, v['target'], v['headers'], v['body'],
                                a['signed_headers'], p, h, path=path) == creq:
                    return (label, h, p, plabel, path)
    return None


def botocore_compute(v, a):
    """Compute canonical request / sts / signature with botocore's SigV4Auth from a raw request
    (only the headers named in SignedHeaders are given to it)."""
    hosts = header_values(v['headers'], 'host')
    url = 'http://%s%s' % (hosts[0], v['target'])
    headers = {}
    for name in a['signed_headers'].split(';'):
        vals = header_values(v['headers'], name)
        check(len(vals) == 1, 'botocore_compute: header %s x%d' % (name, len(vals)))
        headers[name] = vals[0]
    req = AWSRequest(method=v['method'], url=url, headers=headers, data=v['body'].encode())
    req.context['timestamp'] = a['amz_date']
    signer = botocore.auth.SigV4Auth(Credentials(v['access_key'], v['secret']), a['service'],
                                     a['region'])
    n = len(SIGN_LOG)
    creq = signer.canonical_request(req)
    sts = signer.string_to_sign(req, creq)
    sig = signer.signature(sts, req)
    del SIGN_LOG[n:]
    return creq, sts, sig


def derive(base, name, want_error, note, **changes):
    check(want_error in ERROR_KINDS, want_error)
    v = {k: val for k, val in base.items() if not k.startswith('_')}
    v['headers'] = [list(h) for h in base['headers']]
    v.update(changes)
    v.update({'name': name, 'valid': False, 'want_error': want_error,
              'note': note + ' (derived from %s)' % base['name']})
    return v


def set_header(headers, lname, value):
    idx = [i for i, (n, _) in enumerate(headers) if n.lower() == lname]
    check(len(idx) == 1, 'set_header %s: %d matches' % (lname, len(idx)))
    headers[idx[0]] = [headers[idx[0]][0], value]


def resign(base, name, want_error, note, valid=False, headers=None, target=None,
           signed_headers=None, cred_date=None, payload=None, add_headers=()):
    """Derive a vector and re-sign it CONSISTENTLY with this script's own HMAC code: a
    verifier that skipped the check under test would accept it."""
    v = {k: val for k, val in base.items() if not k.startswith('_')}
    v['headers'] = [list(h) for h in (headers or base['headers'])]
    for h in add_headers:
        auth_i = [i for i, (n, _) in enumerate(v['headers']) if n.lower() == 'authorization']
        v['headers'].insert(auth_i[0] if auth_i else len(v['headers']), list(h))
    if target is not None:
        v['target'] = target
    a = parse_auth(dict(v, headers=[list(h) for h in v['headers']]))
    sh = signed_headers or a['signed_headers']
    date = cred_date or a['date']
    host = header_values(v['headers'], 'host')[0].lower()
    if a['presigned']:
        path, query = split_target(v['target'])
        parts = []
        for part in query.split('&'):
            k = part.partition('=')[0]
            if k == 'X-Amz-Signature':
                continue
            if k == 'X-Amz-SignedHeaders':
                part = 'X-Amz-SignedHeaders=' + rfc3986(sh)
            elif k == 'X-Amz-Credential':
                part = 'X-Amz-Credential=' + rfc3986('%s/%s/%s/%s/aws4_request' % (
                    a['access_key'], date, a['region'], a['service']))
            parts.append(part)
        query = '&'.join(parts)
        p = payload or sha256hex(v['body'])
        creq = rebuild_creq(v['method'], path + '?' + query, v['headers'], v['body'], sh, p, host)
        sts, sig = sign(v['secret'], a['amz_date'], date, a['region'], a['service'], creq)
        v['target'] = '%s?%s&X-Amz-Signature=%s' % (path, query, sig)
    else:
        p = payload or sha256hex(v['body'])
        creq = rebuild_creq(v['method'], v['target'], v['headers'], v['body'], sh, p, host)
        sts, sig = sign(v['secret'], a['amz_date'], date, a['region'], a['service'], creq)
        sep = a['separator']
        set_header(v['headers'], 'authorization', sep.join([
            '%s Credential=%s/%s/%s/%s/aws4_request' % (ALGO, a['access_key'], date,
                                                        a['region'], a['service']),
            'SignedHeaders=' + sh, 'Signature=' + sig]))
    v.update({'name': name, 'canonical_request': creq, 'string_to_sign': sts,
              'signature': sig, 'signed_headers': sh, 'valid': valid,
              'note': note + ' (derived from %s; re-signed with this script\'s own hashlib/hmac '
                             'SigV4 code)' % base['name']})
    if not valid:
        check(want_error in ERROR_KINDS, want_error)
        v['want_error'] = want_error
    return v


# --- clients ------------------------------------------------------------------------------------
def boto2_conn(port, key, host='127.0.0.1', path='/services/Cloud'):
    conn = EC2Connection(aws_access_key_id=key[0], aws_secret_access_key=key[1],
                         is_secure=False, port=port, path=path,
                         region=RegionInfo(name='RegionOne', endpoint=host))
    check(type(conn._auth_handler).__name__ == 'HmacAuthV4Handler',
          'boto auth handler is %s' % type(conn._auth_handler).__name__)
    return conn


def py(fn):
    def run():
        with use_py_signers():
            return fn()
    return run


def presign_and_fetch(port, client, method, params, signer, http_method=None, fetch='GET'):
    """generate_presigned_url(method, Params=params, ExpiresIn=300[, HttpMethod=http_method]),
    then send the URL with a plain http.client request (fetch: GET, or POST with empty body)."""
    def run():
        kw = {'HttpMethod': http_method} if http_method else {}
        if signer == 'py':
            with use_py_signers():
                url = client.generate_presigned_url(method, Params=params, ExpiresIn=300, **kw)
        else:
            url = client.generate_presigned_url(method, Params=params, ExpiresIn=300, **kw)
        u = urllib.parse.urlsplit(url)
        check(u.netloc == '127.0.0.1:%d' % port, 'presigned netloc %r' % u.netloc)
        conn = http.client.HTTPConnection('127.0.0.1', port, timeout=10)
        conn.request(fetch, u.path + '?' + u.query, body=b'' if fetch == 'POST' else None)
        resp = conn.getresponse()
        resp.read()
        conn.close()
        check(resp.status == 200, 'presigned %s status %s' % (fetch, resp.status))
    return run


def awscli_run(port, key, args):
    def run():
        with tempfile.TemporaryDirectory(prefix='awscli-home-') as home:
            env = {'PATH': '/usr/bin:/bin', 'HOME': home, 'LANG': 'C.UTF-8',
                   'AWS_ACCESS_KEY_ID': key[0], 'AWS_SECRET_ACCESS_KEY': key[1],
                   'AWS_CONFIG_FILE': os.devnull, 'AWS_SHARED_CREDENTIALS_FILE': os.devnull,
                   'AWS_EC2_METADATA_DISABLED': 'true', 'AWS_PAGER': '',
                   'AWS_MAX_ATTEMPTS': '1'}
            cmd = [AWS_CLI, '--endpoint-url', 'http://127.0.0.1:%d/' % port,
                   '--region', 'RegionOne'] + args
            r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
            check(r.returncode == 0, 'awscli %s failed (%d): %s' % (args, r.returncode,
                                                                    r.stderr[-2000:]))
    return run


def awscli_version():
    r = subprocess.run([AWS_CLI, '--version'], capture_output=True, text=True,
                       env={'PATH': '/usr/bin:/bin', 'HOME': tempfile.gettempdir()})
    check(r.returncode == 0, 'aws --version failed: %s' % r.stderr)
    return r.stdout.split()[0]


def collect(port):
    vs = []
    base = 'http://127.0.0.1:%d' % port

    def add(name, client, fn, key, note, signer='py', **kw):
        vs.append(build(name, client, fn, key, note, signer=signer, port=port, **kw))
        return vs[-1]

    # ---- botocore, pure-Python signer ------------------------------------------------------
    bc = botocore_client(base + '/', KEY_A)
    add('botocore-py-post-describe-regions', BOTOCORE_PY, py(lambda: bc.describe_regions()),
        KEY_A, 'botocore default config (no awscrt) POST to endpoint root, region RegionOne')
    add('botocore-py-post-describe-availability-zones', BOTOCORE_PY,
        py(lambda: bc.describe_availability_zones()), KEY_A,
        'botocore (no awscrt) POST DescribeAvailabilityZones, no params')
    add('botocore-py-post-filters', BOTOCORE_PY,
        py(lambda: bc.describe_instances(Filters=BOTOCORE_FILTERS)), KEY_A,
        'botocore (no awscrt) POST DescribeInstances, 12 filters, values with space ~ + * ; / '
        '= & %% e-acute CJK emoji, empty and spaces-only values; body is hashed, not '
        'canonicalised')
    bp = botocore_client(base + '/services/Cloud/', KEY_A)
    add('botocore-py-post-services-cloud-describe-regions', BOTOCORE_PY,
        py(lambda: bp.describe_regions()), KEY_A,
        'botocore (no awscrt) POST to endpoint path /services/Cloud/')
    add('botocore-py-post-services-cloud-filters', BOTOCORE_PY,
        py(lambda: bp.describe_instances(Filters=BOTOCORE_FILTERS)), KEY_A,
        'botocore (no awscrt) POST /services/Cloud/ DescribeInstances with the trap filters')
    bu = botocore_client(base + '/', KEY_A, region='us-east-1')
    add('botocore-py-post-us-east-1-describe-regions', BOTOCORE_PY,
        py(lambda: bu.describe_regions()), KEY_A,
        'botocore (no awscrt) POST with region_name us-east-1')
    bb = botocore_client(base + '/', KEY_B)
    add('botocore-py-post-second-key-filters', BOTOCORE_PY,
        py(lambda: bb.describe_instances(Filters=BOTOCORE_FILTERS)), KEY_B,
        'botocore (no awscrt) POST DescribeInstances signed with the second key pair')
    desc = ('generate_presigned_url(%s, ExpiresIn=300%s) sent with a plain http.client %s (its '
            'Host and Accept-Encoding headers)')

    def presigned_pair(signer, name, extra, fetched, **kw):
        """Vectors name % 'describe-regions' and name % 'filters' (DescribeInstances with the
        trap filters), presigned with bc; kw: presign_and_fetch's http_method / fetch."""
        client, prefix = {'py': (BOTOCORE_PY, 'botocore (no awscrt) '),
                          'crt': (BOTOCORE_CRT, 'botocore+awscrt ')}[signer]
        for op, method, params, what in (
                ('describe-regions', 'describe_regions', {}, 'describe_regions'),
                ('filters', 'describe_instances', {'Filters': BOTOCORE_FILTERS},
                 'describe_instances with the trap filters')):
            add(name % op, client, presign_and_fetch(port, bc, method, params, signer, **kw),
                KEY_A, prefix + desc % (what, extra, fetched), signer=signer)

    add('botocore-py-presigned-describe-regions-fetched-get', BOTOCORE_PY,
        presign_and_fetch(port, bc, 'describe_regions', {}, 'py'), KEY_A,
        'botocore (no awscrt) ' + desc % ('describe_regions', '', 'GET') +
        '; SigV4QueryAuth moves the form params into the query but keeps the operation\'s '
        'HTTP method POST in the canonical request (cf. boto/boto3#756 for STS), so the URL '
        'only verifies when POSTed or when HttpMethod=\'GET\' is given')
    add('botocore-py-presigned-filters-fetched-get', BOTOCORE_PY,
        presign_and_fetch(port, bc, 'describe_instances', {'Filters': BOTOCORE_FILTERS}, 'py'),
        KEY_A, 'botocore (no awscrt) ' + desc % ('describe_instances with the trap filters', '',
                                                 'GET') +
        '; signed with method POST like botocore-py-presigned-describe-regions-fetched-get')
    presigned_pair('py', 'botocore-py-presigned-%s-fetched-post', '', 'POST with empty body',
                   fetch='POST')
    presigned_pair('py', 'botocore-py-presigned-httpmethod-get-%s', ', HttpMethod=GET', 'GET',
                   http_method='GET')
    add('botocore-py-presigned-httpmethod-get-services-cloud-describe-regions', BOTOCORE_PY,
        presign_and_fetch(port, bp, 'describe_regions', {}, 'py', http_method='GET'), KEY_A,
        'botocore (no awscrt), endpoint /services/Cloud/, ' +
        desc % ('describe_regions', ', HttpMethod=GET', 'GET'))

    # ---- botocore, awscrt signer (botocore's default when python3-awscrt is installed) --------
    if BOTOCORE_CRT:
        add('botocore-crt-post-describe-regions', BOTOCORE_CRT, lambda: bc.describe_regions(),
            KEY_A, 'botocore default config with awscrt installed (CrtSigV4Auth), POST to '
            'endpoint root, region RegionOne; canonical request/string to sign from the '
            'aws-c-auth log', signer='crt')
        add('botocore-crt-post-filters', BOTOCORE_CRT,
            lambda: bc.describe_instances(Filters=BOTOCORE_FILTERS), KEY_A,
            'botocore+awscrt POST DescribeInstances with the trap filters', signer='crt')
        add('botocore-crt-post-services-cloud-describe-regions', BOTOCORE_CRT,
            lambda: bp.describe_regions(), KEY_A,
            'botocore+awscrt POST to endpoint path /services/Cloud/', signer='crt')
        add('botocore-crt-post-us-east-1-describe-availability-zones', BOTOCORE_CRT,
            lambda: bu.describe_availability_zones(), KEY_A,
            'botocore+awscrt POST DescribeAvailabilityZones with region_name us-east-1',
            signer='crt')
        add('botocore-crt-presigned-describe-regions-fetched-get', BOTOCORE_CRT,
            presign_and_fetch(port, bc, 'describe_regions', {}, 'crt'), KEY_A,
            'botocore+awscrt (CrtSigV4QueryAuth) ' + desc % ('describe_regions', '', 'GET') +
            '; like the pure-Python signer it signs the operation\'s method POST',
            signer='crt')
        presigned_pair('crt', 'botocore-crt-presigned-httpmethod-get-%s', ', HttpMethod=GET',
                       'GET', http_method='GET')
    else:
        log('WARNING: awscrt not importable; botocore-crt vectors skipped')

    # ---- boto 2 -------------------------------------------------------------------------------
    c = boto2_conn(port, KEY_A)
    add('boto2-post-describe-regions', BOTO2, lambda: c.get_all_regions(), KEY_A,
        'boto2 default EC2Connection (SigV4 hmac-v4) POST, endpoint 127.0.0.1, path '
        '/services/Cloud (boto appends /); scope region/service derived from the hostname '
        'labels: 127.0.0.1 -> region "0", service "127"')
    add('boto2-post-describe-availability-zones', BOTO2, lambda: c.get_all_zones(), KEY_A,
        'boto2 SigV4 POST DescribeAvailabilityZones, no params')
    add('boto2-post-filters', BOTO2, lambda: c.get_all_reservations(filters=FILTERS), KEY_A,
        'boto2 SigV4 POST DescribeInstances with the 12 trap filters; canonical query is empty '
        'for POST, the body is hashed')
    add('boto2-get-describe-regions', BOTO2, lambda: boto2_get(c, 'DescribeRegions', {}),
        KEY_A, 'boto2 SigV4 GET (make_request verb=GET): params in the query string, empty '
               'body')
    add('boto2-get-filters', BOTO2,
        lambda: boto2_get(c, 'DescribeInstances', boto2_filter_params(c)), KEY_A,
        'boto2 SigV4 GET DescribeInstances with the trap filters in the query string')
    cr = boto2_conn(port, KEY_A, path='/')
    add('boto2-post-root-path-describe-regions', BOTO2, lambda: cr.get_all_regions(), KEY_A,
        'boto2 SigV4 POST with connection path /')
    add('boto2-get-root-path-describe-regions', BOTO2,
        lambda: boto2_get(cr, 'DescribeRegions', {}), KEY_A,
        'boto2 SigV4 GET with connection path /')
    cl = boto2_conn(port, KEY_A, host='localhost')
    add('boto2-post-localhost-describe-regions', BOTO2, lambda: cl.get_all_regions(), KEY_A,
        'boto2 SigV4 POST, endpoint hostname localhost: single label -> region and service '
        'both "localhost"')
    add('boto2-get-localhost-filters', BOTO2,
        lambda: boto2_get(cl, 'DescribeInstances', boto2_filter_params(cl)), KEY_A,
        'boto2 SigV4 GET, endpoint localhost, trap filters in the query string')
    clr = boto2_conn(port, KEY_A, host='localhost', path='/')
    add('boto2-post-localhost-root-path-filters', BOTO2,
        lambda: clr.get_all_reservations(filters=FILTERS), KEY_A,
        'boto2 SigV4 POST, endpoint localhost, path /, trap filters')
    cb = boto2_conn(port, KEY_B)
    add('boto2-post-second-key-filters', BOTO2,
        lambda: cb.get_all_reservations(filters=FILTERS), KEY_B,
        'boto2 SigV4 POST DescribeInstances signed with the second key pair')
    cw = boto2_conn(port, (KEY_A[0], KEY_B[1]))
    w = build('neg-boto2-post-wrong-secret', BOTO2, lambda: cw.get_all_regions(), KEY_A, '',
              port=port)
    vs.append(derive(w, w['name'], 'signature_mismatch',
                     'real boto2 request with access key A signed with key B\'s secret; secret '
                     'field is the one stored for A; canonical_request/string_to_sign/signature '
                     'are the client\'s (captured)'))
    vs[-1]['note'] = vs[-1]['note'].replace(' (derived from %s)' % w['name'], '')
    vs[-1]['_signing_secret'] = KEY_B[1]

    # ---- endpoint paths AWS clients sign in their AWS form --------------------------------------
    for slug, path, what in PATHS:
        ep = botocore_client(base + path, KEY_A)
        add('botocore-py-post-path-%s-describe-regions' % slug, BOTOCORE_PY,
            py(lambda: ep.describe_regions()), KEY_A,
            'botocore (no awscrt) POST to endpoint path %s (%s)' % (path, what))
        add('botocore-py-presigned-httpmethod-get-path-%s-describe-regions' % slug, BOTOCORE_PY,
            presign_and_fetch(port, ep, 'describe_regions', {}, 'py', http_method='GET'), KEY_A,
            'botocore (no awscrt), endpoint path %s (%s), ' % (path, what) +
            desc % ('describe_regions', ', HttpMethod=GET', 'GET'))
        if BOTOCORE_CRT:
            add('botocore-crt-post-path-%s-describe-regions' % slug, BOTOCORE_CRT,
                lambda: ep.describe_regions(), KEY_A,
                'botocore+awscrt POST to endpoint path %s (%s)' % (path, what), signer='crt')
            add('botocore-crt-presigned-httpmethod-get-path-%s-describe-regions' % slug,
                BOTOCORE_CRT,
                presign_and_fetch(port, ep, 'describe_regions', {}, 'crt', http_method='GET'),
                KEY_A, 'botocore+awscrt, endpoint path %s (%s), ' % (path, what) +
                desc % ('describe_regions', ', HttpMethod=GET', 'GET'), signer='crt')
        cp = boto2_conn(port, KEY_A, path=path)
        v = add('boto2-post-path-%s-describe-regions' % slug, BOTO2,
                lambda: cp.get_all_regions(), KEY_A,
                'boto2 SigV4 POST, endpoint 127.0.0.1, connection path %s (%s)' % (path, what))
        if split_target(v['target'])[0] != path:
            v['note'] += '; boto 2 itself sent the path as %r' % split_target(v['target'])[0]
    slug, path, what = PATHS[0]
    ep = botocore_client(base + path, KEY_A)
    add('botocore-py-presigned-path-%s-describe-regions-fetched-get' % slug, BOTOCORE_PY,
        presign_and_fetch(port, ep, 'describe_regions', {}, 'py'), KEY_A,
        'botocore (no awscrt), endpoint path %s (%s), ' % (path, what) +
        desc % ('describe_regions', '', 'GET') + '; signed for POST, as '
        'botocore-py-presigned-describe-regions-fetched-get')

    # ---- awscli -------------------------------------------------------------------------------
    cli = awscli_version()
    add('awscli-describe-regions', cli,
        awscli_run(port, KEY_A, ['ec2', 'describe-regions']), KEY_A,
        '%s --endpoint-url http://127.0.0.1:PORT/ --region RegionOne ec2 describe-regions '
        '(env credentials, throwaway HOME)' % AWS_CLI, signer=None)
    add('awscli-describe-instances-filters', cli,
        awscli_run(port, KEY_A, ['ec2', 'describe-instances', '--filters',
                                 json.dumps(AWSCLI_FILTERS, ensure_ascii=False)]), KEY_A,
        '%s ... ec2 describe-instances --filters <JSON, 11 filters incl. space ~ + * ; / = & '
        'e-acute CJK>' % AWS_CLI, signer=None)
    return vs


def negatives(by_name):
    out = []
    f = by_name['botocore-py-post-filters']
    out.append(derive(f, 'neg-botocore-py-post-body-tampered', 'signature_mismatch',
                      'one body byte changed after signing (m1.small -> m1.smalm, same length)',
                      body=replace_once(f['body'], '=m1.small&', '=m1.smalm&', 'tamper')))
    d = by_name['botocore-py-post-describe-regions']
    hd = [list(h) for h in d['headers']]
    ct = header_values(hd, 'content-type')[0]
    set_header(hd, 'content-type', replace_once(ct, 'charset=utf-8', 'charset=UTF-8', 'ct'))
    out.append(derive(d, 'neg-botocore-py-post-signed-header-changed', 'signature_mismatch',
                      'signed Content-Type value changed charset=utf-8 -> charset=UTF-8 after '
                      'signing (header values are case-sensitive)', headers=hd))
    b = by_name['boto2-post-describe-regions']
    hb = [list(h) for h in b['headers']]
    ad = header_values(hb, 'x-amz-date')[0]
    t = datetime.datetime.strptime(ad, '%Y%m%dT%H%M%SZ')
    t2 = t + datetime.timedelta(seconds=1 if t.second < 59 or t.minute < 59 or t.hour < 23
                                else -1)
    ad2 = t2.strftime('%Y%m%dT%H%M%SZ')
    set_header(hb, 'x-amz-date', ad2)
    out.append(derive(b, 'neg-boto2-post-x-amz-date-changed', 'signature_mismatch',
                      'signed X-Amz-Date moved by one second after signing (same day)',
                      headers=hb, amz_date=ad2))
    g = by_name['boto2-get-filters']
    out.append(derive(g, 'neg-boto2-get-query-tampered', 'signature_mismatch',
                      'query value nova -> novb after signing',
                      target=replace_once(g['target'], '=nova&', '=novb&', 'tamper')))
    p = by_name['botocore-py-presigned-httpmethod-get-describe-regions']
    out.append(derive(p, 'neg-botocore-py-presigned-expires-tampered', 'signature_mismatch',
                      'presigned query X-Amz-Expires 300 -> 3000 after signing',
                      target=replace_once(p['target'], 'X-Amz-Expires=300&',
                                          'X-Amz-Expires=3000&', 'tamper')))
    # a path other than the one signed, where the path's AWS form is what was signed
    t = by_name['botocore-py-post-path-escaped-tilde-describe-regions']
    out.append(derive(t, 'neg-botocore-py-post-path-tilde-unescaped', 'signature_mismatch',
                      'sent to /a~b/, signed for /a%7Eb/ (canonical /a%257Eb/): the escape is '
                      'part of what was signed',
                      target=replace_once(t['target'], '/a%7Eb/', '/a~b/', 'path')))
    t = by_name['botocore-py-post-path-escaped-space-describe-regions']
    out.append(derive(t, 'neg-botocore-py-post-path-changed', 'signature_mismatch',
                      'sent to /services/Cloud/, signed for /a%20b/',
                      target=replace_once(t['target'], '/a%20b/', '/services/Cloud/', 'path')))
    t = by_name['boto2-post-path-dot-dot-segment-describe-regions']
    out.append(derive(t, 'neg-boto2-post-path-dot-dot-segment-changed', 'signature_mismatch',
                      'sent to /services/Cloud/../Other/ (AWS form /services/Other/), signed '
                      'for /services/Cloud/../Cloud/ (AWS form /services/Cloud/)',
                      target=replace_once(t['target'], '/../Cloud/', '/../Other/', 'path')))
    t = by_name['botocore-py-presigned-httpmethod-get-path-dot-segment-describe-regions']
    out.append(derive(t, 'neg-botocore-py-presigned-path-dot-segment-changed',
                      'signature_mismatch', 'presigned for /services/./Cloud/, sent to '
                      '/services/./Cloud2/',
                      target=replace_once(t['target'], '/./Cloud/?', '/./Cloud2/?', 'path')))
    out.append(derive(d, 'neg-botocore-py-post-other-secret', 'signature_mismatch',
                      'valid request, but the verifier holds a different secret (key B\'s) for '
                      'the access key', secret=KEY_B[1]))
    out[-1]['_signing_secret'] = KEY_A[1]
    # missing host, re-signed
    out.append(resign(d, 'neg-botocore-py-post-missing-host', 'missing_host',
                      'SignedHeaders without host (content-type;x-amz-date), otherwise valid',
                      signed_headers='content-type;x-amz-date'))
    out.append(resign(b, 'neg-boto2-post-missing-host', 'missing_host',
                      'SignedHeaders without host (x-amz-date only), otherwise valid',
                      signed_headers='x-amz-date'))
    # scope date mismatch, re-signed
    prev = (datetime.datetime.strptime(b['amz_date'][:8], '%Y%m%d') -
            datetime.timedelta(days=1)).strftime('%Y%m%d')
    out.append(resign(b, 'neg-boto2-post-scope-date-mismatch', 'scope_date_mismatch',
                      'Credential date %s is the day before X-Amz-Date\'s date; signing key '
                      'derived from the credential date, string to sign uses X-Amz-Date'
                      % prev, cred_date=prev))
    pp = by_name['botocore-py-presigned-httpmethod-get-filters']
    prevp = (datetime.datetime.strptime(pp['amz_date'][:8], '%Y%m%d') -
             datetime.timedelta(days=1)).strftime('%Y%m%d')
    out.append(resign(pp, 'neg-botocore-py-presigned-scope-date-mismatch',
                      'scope_date_mismatch', 'presigned X-Amz-Credential date is the day before '
                      'X-Amz-Date\'s date', cred_date=prevp))
    # malformed Authorization
    auth = header_values(d['headers'], 'authorization')[0]
    h1 = [list(h) for h in d['headers']]
    set_header(h1, 'authorization', re.sub(r', Signature=[0-9a-f]+$', '', auth))
    out.append(derive(d, 'neg-botocore-py-post-no-signature', 'malformed_authorization',
                      'Authorization without the Signature= component', headers=h1))
    h2 = [list(h) for h in d['headers']]
    set_header(h2, 'authorization', re.sub(r'Credential=([^/]+)/(\d{8})/([^/]+)/ec2/aws4_request',
                                           r'Credential=\1/\2/\3', auth))
    check(header_values(h2, 'authorization')[0] != auth, 'credential rewrite')
    out.append(derive(d, 'neg-botocore-py-post-credential-3-parts', 'malformed_authorization',
                      'Credential with 3 parts (AKID/date/region)', headers=h2))
    h3 = [list(h) for h in d['headers']]
    set_header(h3, 'authorization', re.sub(r'Signature=([0-9a-f]{4})', 'Signature=zzzz', auth))
    out.append(derive(d, 'neg-botocore-py-post-non-hex-signature', 'malformed_authorization',
                      'Signature with non-hex characters (first 4 hex digits -> zzzz)',
                      headers=h3))
    # presigned expiry
    out.append(resign(p, 'neg-botocore-py-presigned-expires-604801', 'expires_too_long',
                      'presigned X-Amz-Expires=604801 (one second over 7 days), re-signed',
                      target=replace_once(p['target'], 'X-Amz-Expires=300&',
                                          'X-Amz-Expires=604801&', 'expires')))
    out.append(resign(p, 'botocore-py-presigned-expires-604800-resigned', None,
                      'VALID boundary case: presigned X-Amz-Expires=604800 (exactly 7 days), '
                      're-signed', valid=True,
                      target=replace_once(p['target'], 'X-Amz-Expires=300&',
                                          'X-Amz-Expires=604800&', 'expires')))
    out[-1]['note'] = out[-1]['note'].replace(
        '(derived from', '(not captured from a client; derived from')
    # UNSIGNED-PAYLOAD with a body (header form), re-signed
    out.append(resign(f, 'neg-botocore-py-post-unsigned-payload-with-body',
                      'unsigned_payload_with_body',
                      'header-form POST with a form body and X-Amz-Content-SHA256: '
                      'UNSIGNED-PAYLOAD (signed header), canonical payload UNSIGNED-PAYLOAD, '
                      're-signed: the body (the EC2 parameters) would be unauthenticated',
                      add_headers=[('X-Amz-Content-SHA256', UNSIGNED)],
                      signed_headers='content-type;host;x-amz-content-sha256;x-amz-date',
                      payload=UNSIGNED))
    return out


def self_check(vectors):
    check_unique_names(vectors)
    for v in vectors:
        n = v['name']
        check(set(FIELD_ORDER) - {'want_error'} <= set(v), '%s: missing fields %s' %
              (n, set(FIELD_ORDER) - set(v)))
        for k in ('target', 'body', 'canonical_request', 'string_to_sign', 'signature'):
            ascii_str(v[k], k, n)
        # independent signature from the canonical request
        secret = v.get('_signing_secret', v['secret'])
        sl = v['string_to_sign'].split('\n')
        check(len(sl) == 4 and sl[0] == ALGO, '%s: string_to_sign shape' % n)
        if v['valid']:
            check(sl[1] == v['amz_date'], '%s: amz_date %r vs sts %r' % (n, v['amz_date'], sl[1]))
        sts, sig = sign(secret, sl[1], sl[2].split('/')[0], v['region'], v['service'],
                        v['canonical_request'])
        check(sts == v['string_to_sign'], '%s: independent sts differs:\n%s\n--\n%s' %
              (n, sts, v['string_to_sign']))
        check(sig == v['signature'], '%s: independent signature %s != %s' %
              (n, sig, v['signature']))
        got = reference_verify(v)
        if v['valid']:
            check('want_error' not in v, n)
            check(got is None, '%s: reference verifier says %s' % (n, got))
            a = parse_auth(v)
            check(a['signature'] == v['signature'] and a['amz_date'] == v['amz_date'] and
                  a['region'] == v['region'] and a['service'] == v['service'] and
                  a['signed_headers'] == v['signed_headers'] and
                  a['presigned'] == v['presigned'], '%s: fields vs wire' % n)
            host = header_values(v['headers'], 'host')[0]
            ok = False
            methods = [v['method']] + (['POST'] if a['presigned'] and v['method'] == 'GET' else [])
            for method in methods:
                if find_candidate(v, a, method, v['canonical_request'], host, None):
                    ok = True
            check(ok, '%s: canonical request not rebuildable from the wire' % n)
        else:
            check(v['want_error'] in ERROR_KINDS, n)
            check(got == v['want_error'], '%s: reference verifier says %s, want %s' %
                  (n, got, v['want_error']))


def check_aws_testsuite(root):
    """The copied aws-sig-v4-test-suite: .authz signature = HMAC(.sts), .sts hashes .creq."""
    if not os.path.isdir(root):
        log('no %s; AWS test suite check skipped' % root)
        return 0
    secret = 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY'
    n = 0
    for case in sorted(os.listdir(root)):
        d = os.path.join(root, case)
        if not os.path.isdir(d):
            continue

        def rd(ext):
            with open(os.path.join(d, '%s.%s' % (case, ext)), encoding='utf-8', newline='') as f:
                return f.read()
        creq, sts, authz = rd('creq'), rd('sts'), rd('authz')
        lines = sts.split('\n')
        date, region, service, term = lines[2].split('/')
        got_sts, sig = sign(secret, lines[1], date, region, service, creq)
        check(got_sts == sts, 'aws-testsuite %s: sts' % case)
        check(authz == '%s Credential=AKIDEXAMPLE/%s, SignedHeaders=%s, Signature=%s' % (
            ALGO, lines[2], creq.split('\n')[-2], sig), 'aws-testsuite %s: authz' % case)
        n += 1
    return n


def main():
    global CRT_LOG
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--port', type=int, default=18774)
    args = ap.parse_args()
    if BOTOCORE_CRT:
        CRT_LOG = CrtLog()
    srv = start_server(args.port, _Capture)
    port = srv.server_address[1]
    log('capture server on 127.0.0.1:%d; %s; %s; %s' % (port, BOTO2, BOTOCORE_PY, BOTOCORE_CRT))
    try:
        captured = collect(port)
    finally:
        srv.shutdown()
        if CRT_LOG:
            CRT_LOG.close()
    for v in captured:
        log('%-55s %-4s Host=%-17s signed-host-candidate=%-13s scope=%s/%s UA=%s' % (
            v['name'], v['method'], header_values(v['headers'], 'host')[0],
            (v.get('_found') or ['NONE'])[0], v['region'], v['service'],
            v.get('_ua', '').split(' ')[0]))
    by_name = {v['name']: v for v in captured}
    vectors = captured + negatives(by_name)
    vectors.sort(key=lambda v: v['name'])
    self_check(vectors)
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'sigv4',
                        'testdata', 'aws-testsuite')
    log('aws-testsuite cases verified: %d' % check_aws_testsuite(os.path.normpath(root)))
    emit(vectors, FIELD_ORDER, 60)


if __name__ == '__main__':
    run_main(main, 'capture_sigv4_vectors')

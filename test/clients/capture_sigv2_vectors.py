#!/usr/bin/python3
"""Capture AWS Signature Version 2 (EC2 Query API) known-answer vectors from REAL clients.

Regenerate (from the repository root; needs Debian's python3-boto and python3-botocore):

    /usr/bin/python3 test/clients/capture_sigv2_vectors.py > sigv2/testdata/vectors.json

The test suite (test/vectors_test.go) captures again on every run and compares with the committed
file through compare_vectors.py, which ignores what changes from run to run (timestamps and the
signatures over them, the port): a Debian client update that signs differently fails there.

Use /usr/bin/python3 (Debian's interpreter, where boto 2.49 and botocore live), not a pyenv
python3 that may come first on PATH.  Options: ``--port N`` (capture server port, default 18773;
``--port 0`` picks a random free port; if the default is busy a random port is used and the host
part of the vectors changes).  The parts shared with capture_sigv4_vectors.py (capture server,
fake keys, trap filters, JSON output) are in capturelib.py, imported from the script's directory.

What it does
------------
* Starts a loopback capture HTTP server (capturelib) on 127.0.0.1 that records, per request, the
  method, the raw request target exactly as received (path + raw query, taken from the request
  line, no decoding), the Host header exactly as received, the Content-Type and the raw body
  bytes, and answers every request with a tiny valid EC2 XML response so the clients do not error.
* Drives real clients against it with fixed fake 32-hex-char keys:
  - boto 2.x ``EC2Connection`` with SigV2 forced (``_required_auth_capability`` -> ['ec2'];
    boto >= 2.35 would otherwise send SigV4), HmacSHA256 and HmacSHA1 (``_hmac_256 = None`` on
    the auth handler), POST (boto's own high-level calls) and GET (``make_request(..., verb='GET')``),
    path /services/Cloud and /; plus one boto SignatureVersion=1 capture (capability 'sign-v1').
  - botocore ``Config(signature_version='v2')``, service ec2, region RegionOne, endpoint
    http://127.0.0.1:PORT and http://127.0.0.1:PORT/services/Cloud/ (and http://LocalHost:PORT to
    document the botocore host-case incompatibility).
* Captures the exact string each client HMACed by replacing the ``hmac`` module reference in
  boto.auth and botocore.auth with a recording shim, and the exact digest it produced.
* Adds the published OpenStack documentation vector (first entry) and NEGATIVE vectors
  ("valid": false plus "want_error": signature_mismatch | duplicate_param |
  bad_percent_encoding | legacy_signature_version | missing_param).
* Self-checks everything (HMAC recomputation, independent canonicalisation from what was sent on
  the wire, and a small reference verifier that must return each negative vector's want_error)
  and fails loudly (non-zero exit) on any disagreement.

Output: a JSON array on stdout (2-space indent, fixed key order, non-ASCII as \\u escapes).
The published vector comes first, the rest are sorted by "name".  Everything is deterministic
except Timestamp values and the signatures/bodies/string-to-sign that contain them (and the
port if the default one is busy).

Vector fields: name, client, method, host (Host header as received), target (raw request target),
content_type, body (raw body; ASCII), access_key, secret (the secret the *verifier* has stored for
access_key), signature_method, string_to_sign (exactly what the client HMACed), signature (the
client's base64 signature, form-decoded from the wire), timestamp, valid, want_error (only when
valid is false), note.  Timestamps are old by the time the file is used: Go tests must inject the
clock (or skip the time-window check) when replaying these vectors.
"""

import argparse
import base64
import copy
import hashlib
import hmac as _real_hmac
import re
import sys
import urllib.parse

sys.dont_write_bytecode = True   # leave no __pycache__ next to the scripts in the tree
from capturelib import (BOTOCORE_FILTERS, CAPTURES, FILTERS, KEY_A, KEY_B,  # noqa: E402
                        CaptureError, CaptureHandler, ascii_str, boto2_filter_params,
                        boto2_get, botocore_client, check, check_unique_names, emit, log,
                        replace_once, request_vector, run_main, sanitise_environment,
                        start_server)

sanitise_environment()   # before importing the clients: boto reads its config on import
try:
    import boto
    import boto.auth
    from boto.ec2.connection import EC2Connection
    from boto.regioninfo import RegionInfo
    import botocore
    import botocore.auth
    import botocore.session
except ImportError as e:  # pragma: no cover
    sys.exit('capture_sigv2_vectors: %s; run with /usr/bin/python3 and install python3-boto '
             'python3-botocore' % e)

BOTO2 = 'boto %s' % boto.__version__
BOTOCORE = 'botocore %s' % botocore.__version__
PUBLISHED = 'published (OpenStack docs)'

FIELD_ORDER = ['name', 'client', 'method', 'host', 'target', 'content_type', 'body',
               'access_key', 'secret', 'signature_method', 'string_to_sign', 'signature',
               'timestamp', 'valid', 'want_error', 'note']
ERROR_KINDS = {'signature_mismatch', 'duplicate_param', 'bad_percent_encoding',
               'legacy_signature_version', 'missing_param'}


# --- recording hmac shim ------------------------------------------------------------------------
HMAC_LOG = []


class _RecordingHmac(object):
    def __init__(self, key, msg, digestmod):
        self._h = _real_hmac.new(key, msg, digestmod)
        self._key = bytes(key)
        self._parts = [] if msg is None else [bytes(msg)]

    def update(self, msg):
        self._parts.append(bytes(msg))
        self._h.update(msg)

    def digest(self):
        d = self._h.digest()
        if self._parts:
            HMAC_LOG.append({'key': self._key, 'msg': b''.join(self._parts),
                             'name': self._h.name, 'digest': d})
        return d

    def hexdigest(self):
        return self.digest().hex()

    def copy(self):
        c = copy.copy(self)
        c._h = self._h.copy()
        c._parts = list(self._parts)
        return c

    def __getattr__(self, name):
        return getattr(self._h, name)


class _HmacShim(object):
    @staticmethod
    def new(key, msg=None, digestmod=None):
        return _RecordingHmac(key, msg, digestmod)

    compare_digest = staticmethod(_real_hmac.compare_digest)
    HMAC = _real_hmac.HMAC
    digest = staticmethod(_real_hmac.digest)


boto.auth.hmac = _HmacShim
botocore.auth.hmac = _HmacShim

# --- capture server (capturelib) ----------------------------------------------------------------
class _Capture(CaptureHandler):
    def request_fields(self):
        return {'hosts': self.headers.get_all('Host') or [],
                'content_types': self.headers.get_all('Content-Type') or [],
                'user_agent': self.headers.get('User-Agent', '')}


# --- wire parsing / reference verifier -----------------------------------------------------------
class BadEncoding(Exception):
    pass


_PCT_OK = re.compile(r'%[0-9A-Fa-f]{2}')


def form_decode(s):
    """application/x-www-form-urlencoded decoding, strict: '+' is space, every '%' must start a
    %XX escape, decoded bytes must be UTF-8.  Empty segments are skipped (like Go ParseQuery)."""
    out = []
    for part in s.split('&'):
        if part == '':
            continue
        k, _, v = part.partition('=')
        res = []
        for x in (k, v):
            if re.sub(_PCT_OK, '', x).count('%'):
                raise BadEncoding(x)
            try:
                res.append(urllib.parse.unquote_to_bytes(x.replace('+', ' ')).decode('utf-8'))
            except UnicodeDecodeError:
                raise BadEncoding(x)
        out.append((res[0], res[1]))
    return out


def rfc3986(s):
    return urllib.parse.quote(s.encode('utf-8'), safe='-_~')


def is_form(content_type):
    return content_type.split(';')[0].strip().lower() == 'application/x-www-form-urlencoded'


def wire_params(method, target, content_type, body):
    _, _, query = target.partition('?')
    pairs = form_decode(query)
    if method == 'POST' and is_form(content_type):
        pairs += form_decode(body)
    return pairs


def canonical(pairs):
    pairs = [(k, v) for k, v in pairs if k != 'Signature']
    pairs.sort(key=lambda kv: (kv[0].encode('utf-8'), kv[1].encode('utf-8')))
    return '&'.join(rfc3986(k) + '=' + rfc3986(v) for k, v in pairs)


def host_candidates(host):
    h = host.lower()
    cands = [h]
    m = re.match(r'^(\[[^\]]*\]|[^:\[\]]*):\d+$', h)
    if m:
        cands.append(m.group(1))
    return cands


def candidate_strings(v, pairs):
    path = v['target'].partition('?')[0] or '/'
    canon = canonical(pairs)
    return ['%s\n%s\n%s\n%s' % (v['method'], h, path, canon) for h in host_candidates(v['host'])]


def b64hmac(secret, msg, method):
    digest = {'HmacSHA256': hashlib.sha256, 'HmacSHA1': hashlib.sha1}[method]
    return base64.b64encode(_real_hmac.new(secret.encode('utf-8'), msg.encode('utf-8'),
                                           digest).digest()).decode('ascii')


def reference_verify(v):
    """Return None if the vector verifies, else the failure kind.  Order of checks: encoding,
    duplicates, SignatureVersion, required params, signature."""
    try:
        pairs = wire_params(v['method'], v['target'], v['content_type'], v['body'])
    except BadEncoding:
        return 'bad_percent_encoding'
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        return 'duplicate_param'
    p = dict(pairs)
    if 'SignatureVersion' in p and p['SignatureVersion'] != '2':
        return 'legacy_signature_version'
    for req in ('AWSAccessKeyId', 'Action', 'Signature', 'SignatureMethod', 'SignatureVersion'):
        if req not in p:
            return 'missing_param'
    if p['AWSAccessKeyId'] != v['access_key'] or p['SignatureMethod'] not in ('HmacSHA256',
                                                                            'HmacSHA1'):
        return 'signature_mismatch'
    for sts in candidate_strings(v, pairs):
        if _real_hmac.compare_digest(b64hmac(v['secret'], sts, p['SignatureMethod']),
                                     p['Signature']):
            return None
    return 'signature_mismatch'


# --- vector construction --------------------------------------------------------------------------
def capture(name, fn):
    del CAPTURES[:]
    del HMAC_LOG[:]
    fn()
    check(len(CAPTURES) == 1, '%s: expected 1 request, got %d' % (name, len(CAPTURES)))
    check(len(HMAC_LOG) == 1, '%s: expected 1 HMAC, got %d' % (name, len(HMAC_LOG)))
    return CAPTURES[0], HMAC_LOG[0]


def build(name, client, fn, access_key, secret, note, sigv=2):
    """Run fn (one client call), and turn the single captured request + HMAC into a vector."""
    cap, hm = capture(name, fn)
    check(len(cap['hosts']) == 1, '%s: Host headers %r' % (name, cap['hosts']))
    check(len(cap['content_types']) <= 1, '%s: Content-Type %r' % (name, cap['content_types']))
    v = request_vector(cap, name, client)
    v.update({
        'host': ascii_str(cap['hosts'][0], 'Host', name),
        'content_type': (cap['content_types'] or [''])[0],
        'body': ascii_str(cap['body'], 'body', name),
        'access_key': access_key,
        'secret': secret,
    })
    pairs = wire_params(v['method'], v['target'], v['content_type'], v['body'])
    p = dict(pairs)
    check(len(p) == len(pairs), '%s: client sent duplicate params' % name)
    algo = {'hmac-sha256': 'HmacSHA256', 'hmac-sha1': 'HmacSHA1'}[hm['name']]
    check(hm['key'] == secret_used(name, secret).encode(), '%s: HMAC key mismatch' % name)
    sig = base64.b64encode(hm['digest']).decode('ascii')
    check(p.get('Signature') == sig, '%s: wire Signature %r != HMAC %r' %
          (name, p.get('Signature'), sig))
    check(p.get('SignatureVersion') == str(sigv), '%s: SignatureVersion %r' %
          (name, p.get('SignatureVersion')))
    if sigv == 2:
        check(p.get('SignatureMethod') == algo, '%s: SignatureMethod %r != HMAC %s' %
              (name, p.get('SignatureMethod'), algo))
    v.update({
        'signature_method': algo,
        'string_to_sign': ascii_str(hm['msg'], 'string to sign', name),
        'signature': sig,
        'timestamp': p['Timestamp'],
        'valid': True,
        'note': note,
    })
    v['_user_agent'] = cap['user_agent']
    return v


_SECRET_OVERRIDE = {}


def secret_used(name, default):
    return _SECRET_OVERRIDE.get(name, default)


def derive(base, name, want_error, note, **changes):
    check(want_error in ERROR_KINDS, want_error)
    v = dict(base)
    v.update(changes)
    v.update({'name': name, 'valid': False, 'want_error': want_error,
              'note': note + ' (derived from %s)' % base['name']})
    return v


def refused(v, want_error, note):
    """A captured request a verifier must refuse: marked like derive(), keeping name and note."""
    v = derive(v, v['name'], want_error, note)
    v['note'] = note
    return v


# --- clients ------------------------------------------------------------------------------------
class EC2SigV2Connection(EC2Connection):
    """boto < 2.35 behaviour: SigV2 for EC2."""

    def _required_auth_capability(self):
        return ['ec2']


class EC2SigV1Connection(EC2Connection):
    def _required_auth_capability(self):
        return ['sign-v1']


def boto2_conn(port, key, host='127.0.0.1', path='/services/Cloud', sha1=False,
               cls=EC2SigV2Connection, handler='QuerySignatureV2AuthHandler'):
    conn = cls(aws_access_key_id=key[0], aws_secret_access_key=key[1], is_secure=False,
               port=port, path=path, region=RegionInfo(name='RegionOne', endpoint=host))
    check(type(conn._auth_handler).__name__ == handler,
          'boto auth handler is %s' % type(conn._auth_handler).__name__)
    if sha1:
        conn._auth_handler._hmac_256 = None   # HmacKeys.algorithm()/_get_hmac() fall back to SHA1
    return conn


def boto2_ops(conn):
    """EC2 calls made with several boto 2 connections, keyed by vector-name suffix."""
    return {'describe-regions': conn.get_all_regions,
            'describe-availability-zones': conn.get_all_zones,
            'filters': lambda: conn.get_all_reservations(filters=FILTERS)}


def botocore_ops(client):
    """Likewise for botocore clients."""
    return {'describe-regions': client.describe_regions,
            'describe-availability-zones': client.describe_availability_zones,
            'filters': lambda: client.describe_instances(Filters=BOTOCORE_FILTERS)}


def collect(port):
    vs = []
    base = 'http://127.0.0.1:%d' % port

    def calls(prefix, client, ops, notes):
        """Capture ops[suffix]() as vector prefix + suffix, for each suffix, note in notes."""
        for suffix, note in notes.items():
            vs.append(build(prefix + suffix, client, ops[suffix], *KEY_A, note))

    # ---- boto 2 -------------------------------------------------------------------------------
    c = boto2_conn(port, KEY_A)
    calls('boto2-post-sha256-', BOTO2, boto2_ops(c), {
        'describe-regions': 'boto2 SigV2 POST, no params; boto appends / to path /services/Cloud '
                            'and sends Host without port',
        'describe-availability-zones': 'boto2 SigV2 POST DescribeAvailabilityZones, no params',
        'filters': 'boto2 POST DescribeInstances, 12 filters (Filter.10 < Filter.2 byte order), '
                   'values with space ~ + * ; / = & % non-ASCII, empty and spaces-only values'})
    c1 = boto2_conn(port, KEY_A, sha1=True)
    calls('boto2-post-sha1-', BOTO2, boto2_ops(c1), {
        'describe-regions': 'boto2 SigV2 POST with HmacSHA1 (SignatureMethod=HmacSHA1)',
        'filters': 'boto2 HmacSHA1 POST DescribeInstances with the trap filters'})
    vs.append(build('boto2-get-sha256-describe-regions', BOTO2,
                    lambda: boto2_get(c, 'DescribeRegions', {}), *KEY_A,
                    'boto2 SigV2 GET: signed params in the query string, Signature last '
                    '(quote_plus), empty body'))
    vs.append(build('boto2-get-sha256-filters', BOTO2,
                    lambda: boto2_get(c, 'DescribeInstances', boto2_filter_params(c)), *KEY_A,
                    'boto2 GET DescribeInstances with the trap filters in the query string'))
    vs.append(build('boto2-get-sha1-filters', BOTO2,
                    lambda: boto2_get(c1, 'DescribeInstances', boto2_filter_params(c1)),
                    *KEY_A, 'boto2 HmacSHA1 GET DescribeInstances with the trap filters'))
    cr = boto2_conn(port, KEY_A, path='/')
    vs.append(build('boto2-post-sha256-root-path', BOTO2,
                    lambda: cr.get_all_regions(), *KEY_A,
                    'boto2 POST with connection path / (post-2015 nova/ec2-api layout)'))
    cu = boto2_conn(port, KEY_A, host='LocalHost')
    vs.append(build('boto2-post-sha256-mixed-case-host', BOTO2,
                    lambda: cu.get_all_regions(), *KEY_A,
                    'boto2 endpoint LocalHost: sends Host: LocalHost (no port) but signs '
                    'localhost, so the verifier must lowercase the host'))
    cb = boto2_conn(port, KEY_B)
    vs.append(build('boto2-post-sha256-second-key', BOTO2,
                    lambda: cb.get_all_reservations(filters=FILTERS), *KEY_B,
                    'boto2 POST DescribeInstances signed with the second key pair'))
    cw = boto2_conn(port, (KEY_A[0], KEY_B[1]))
    _SECRET_OVERRIDE['neg-boto2-post-wrong-secret'] = KEY_B[1]
    wrong = build('neg-boto2-post-wrong-secret', BOTO2, lambda: cw.get_all_regions(), *KEY_A,
                  '')
    vs.append(refused(wrong, 'signature_mismatch',
                      'real boto2 request with access key A but signed with key B\'s secret; '
                      'secret field is the one stored for A (captured)'))
    cv1 = boto2_conn(port, KEY_A, cls=EC2SigV1Connection, handler='QuerySignatureV1AuthHandler')
    v1 = build('neg-boto2-post-sigv1', BOTO2, lambda: cv1.get_all_regions(), *KEY_A, '',
               sigv=1)
    vs.append(refused(v1, 'legacy_signature_version',
                      'real boto2 SignatureVersion=1 request (HmacSHA1 over concatenated '
                      'case-insensitively sorted key+value, no SignatureMethod param): must be '
                      'rejected as legacy, so check SignatureVersion before requiring '
                      'SignatureMethod (captured)'))

    # ---- botocore -----------------------------------------------------------------------------
    bc = botocore_client(base, KEY_A, signature_version='v2')
    calls('botocore-post-sha256-', BOTOCORE, botocore_ops(bc), {
        'describe-regions': 'botocore v2 POST to endpoint root: path /, Host and signed host '
                            'include the port',
        'describe-availability-zones': 'botocore v2 POST DescribeAvailabilityZones, no params',
        'filters': 'botocore v2 POST DescribeInstances with the trap filters: body uses + for '
                   'space, signature uses %20'})
    bp = botocore_client(base + '/services/Cloud/', KEY_A, signature_version='v2')
    calls('botocore-post-sha256-services-cloud-', BOTOCORE, botocore_ops(bp), {
        'describe-regions': 'botocore v2 POST to endpoint path /services/Cloud/ (signed '
                            'verbatim)',
        'filters': 'botocore v2 POST /services/Cloud/ DescribeInstances with the trap filters'})
    bb = botocore_client(base, KEY_B, signature_version='v2')
    vs.append(build('botocore-post-sha256-second-key', BOTOCORE,
                    lambda: bb.describe_instances(Filters=BOTOCORE_FILTERS), *KEY_B,
                    'botocore v2 POST DescribeInstances signed with the second key pair'))
    bu = botocore_client('http://LocalHost:%d' % port, KEY_A, signature_version='v2')
    up = build('botocore-post-sha256-mixed-case-host', BOTOCORE,
               lambda: bu.describe_regions(), *KEY_A, '')
    vs.append(refused(up, 'signature_mismatch',
                      'REAL-WORLD INCOMPATIBILITY: botocore endpoint http://LocalHost:PORT signs '
                      'the URL netloc with its case (LocalHost:PORT) but sends a lowercase Host, '
                      'so no Host-derived candidate can verify it; endpoint URLs must be '
                      'lowercase (captured, signature is genuine)'))
    return vs


def published_vector():
    params = [('AWSAccessKeyId', '14d40f23e54148579ea559c07bfaa42a'),
              ('Action', 'DescribeAvailabilityZones'), ('SignatureMethod', 'HmacSHA256'),
              ('SignatureVersion', '2'), ('Timestamp', '2013-12-31T14:34:25Z'),
              ('Version', '2010-08-31')]
    sts = ('POST\n172.25.16.1:8773\n/services/Cloud/\n'
           'AWSAccessKeyId=14d40f23e54148579ea559c07bfaa42a&Action=DescribeAvailabilityZones'
           '&SignatureMethod=HmacSHA256&SignatureVersion=2&Timestamp=2013-12-31T14%3A34%3A25Z'
           '&Version=2010-08-31')
    sig = 'doK1P+ImDAr9YXpWbH6pFHNJtBbNrWMB9lrKqawIkMg='
    secret = '921a3445e0c2485d83458251d1803219'
    got = b64hmac(secret, sts, 'HmacSHA256')
    if got != sig:
        raise CaptureError('PUBLISHED OPENSTACK VECTOR DOES NOT VERIFY: HMAC-SHA256 gives %s, '
                           'docs say %s' % (got, sig))
    body = canonical(params) + '&Signature=' + rfc3986(sig)
    return {
        'name': 'published-openstack-docs-describe-availability-zones',
        'client': PUBLISHED,
        'method': 'POST', 'host': '172.25.16.1:8773', 'target': '/services/Cloud/',
        'content_type': 'application/x-www-form-urlencoded', 'body': body,
        'access_key': '14d40f23e54148579ea559c07bfaa42a', 'secret': secret,
        'signature_method': 'HmacSHA256', 'string_to_sign': sts, 'signature': sig,
        'timestamp': '2013-12-31T14:34:25Z', 'valid': True,
        'note': 'published OpenStack docs example (Keystone ec2tokens / nova EC2 API); host '
                'signed with port 8773; body constructed here from the signed params',
    }


def negatives(by_name):
    out = []
    f = by_name['boto2-post-sha256-filters']
    out.append(derive(f, 'neg-boto2-post-tampered-value', 'signature_mismatch',
                      'body Filter.3.Value.1 changed m1.small -> m1.xlarge after signing',
                      body=replace_once(f['body'], 'Filter.3.Value.1=m1.small&',
                                        'Filter.3.Value.1=m1.xlarge&', 'tamper')))
    g = by_name['boto2-get-sha256-filters']
    out.append(derive(g, 'neg-boto2-get-tampered-query', 'signature_mismatch',
                      'query Filter.4.Value.1 changed nova -> nova2 after signing',
                      target=replace_once(g['target'], 'Filter.4.Value.1=nova&',
                                          'Filter.4.Value.1=nova2&', 'tamper')))
    b = by_name['botocore-post-sha256-filters']
    out.append(derive(b, 'neg-botocore-post-plus-as-literal', 'signature_mismatch',
                      'body "key-name" value my+key (space) changed to my%2Bkey (literal +): '
                      'a verifier must not treat + and %2B alike',
                      body=replace_once(b['body'], '=my+key&', '=my%2Bkey&', 'tamper')))
    r = by_name['boto2-post-sha256-describe-regions']
    out.append(derive(r, 'neg-boto2-post-other-secret', 'signature_mismatch',
                      'valid request, but the verifier holds a different secret (key B\'s) for '
                      'the access key', secret=KEY_B[1]))
    out.append(derive(r, 'neg-boto2-post-duplicate-action-appended', 'duplicate_param',
                      'second Action=TerminateInstances appended to the signed body (last-wins '
                      'parsers would run TerminateInstances)',
                      body=r['body'] + '&Action=TerminateInstances'))
    d = by_name['botocore-post-sha256-describe-regions']
    out.append(derive(d, 'neg-botocore-post-duplicate-action-prepended', 'duplicate_param',
                      'Action=TerminateInstances prepended to the signed body (first-wins '
                      'parsers would run TerminateInstances)',
                      body='Action=TerminateInstances&' + d['body']))
    out.append(derive(d, 'neg-botocore-post-duplicate-action-in-query', 'duplicate_param',
                      'POST body unchanged, ?Action=TerminateInstances added to the target: '
                      'query and body params together contain Action twice',
                      target=d['target'] + '?Action=TerminateInstances'))
    out.append(derive(d, 'neg-botocore-post-bad-percent-g1', 'bad_percent_encoding',
                      'invalid escape %G1 inserted into the Action value of the body',
                      body=replace_once(d['body'], 'Action=DescribeRegions',
                                        'Action=Describe%G1Regions', 'tamper')))
    out.append(derive(r, 'neg-boto2-post-bad-percent-truncated', 'bad_percent_encoding',
                      'truncated escape %4 appended to the end of the body (Signature value)',
                      body=r['body'] + '%4'))
    gq = by_name['boto2-get-sha256-describe-regions']
    out.append(derive(gq, 'neg-boto2-get-bad-percent-truncated', 'bad_percent_encoding',
                      'truncated escape %4 appended to the end of the query string',
                      target=gq['target'] + '%4'))
    # SignatureVersion=1 but signed with the v2 algorithm by us.
    body = replace_once(r['body'], 'SignatureVersion=2&', 'SignatureVersion=1&', 'legacy')
    pairs = form_decode(body)
    sts = candidate_strings(dict(r, body=body), pairs)[0]
    check(sts == r['string_to_sign'].replace('SignatureVersion=2&', 'SignatureVersion=1&'),
          'legacy re-sign: unexpected string to sign')
    sig = b64hmac(r['secret'], sts, 'HmacSHA256')
    body = re.sub(r'&Signature=[^&]*$', '&Signature=' + urllib.parse.quote_plus(sig), body)
    out.append(derive(r, 'neg-boto2-post-sigversion1-resigned', 'legacy_signature_version',
                      'SignatureVersion changed to 1 and re-signed with the v2 algorithm (valid '
                      'HMAC): must be rejected because of the version alone',
                      body=body, string_to_sign=sts, signature=sig))
    out.append(derive(d, 'neg-botocore-post-missing-signature', 'missing_param',
                      'Signature parameter removed from the body',
                      body=replace_once(d['body'], '&Signature=' +
                                        urllib.parse.quote_plus(d['signature']), '',
                                        'missing')))
    return out


def self_check(vectors):
    check_unique_names(vectors)
    for v in vectors:
        n = v['name']
        for k in ('host', 'target', 'body', 'string_to_sign', 'signature', 'content_type'):
            ascii_str(v[k], k, n)
        # The client's signature is the HMAC of the client's string to sign (for the captured
        # SigV1 one: of what it fed the HMAC), under the secret the client actually used.
        signing_secret = {'neg-boto2-post-wrong-secret': KEY_B[1],
                          'neg-boto2-post-other-secret': KEY_A[1]}.get(n, v['secret'])
        check(b64hmac(signing_secret, v['string_to_sign'], v['signature_method']) ==
              v['signature'], '%s: HMAC(string_to_sign) != signature' % n)
        got = reference_verify(v)
        if v['valid']:
            check('want_error' not in v, n)
            check(got is None, '%s: reference verifier says %s' % (n, got))
            pairs = wire_params(v['method'], v['target'], v['content_type'], v['body'])
            check(v['string_to_sign'] in candidate_strings(v, pairs),
                  '%s: string_to_sign not rebuildable from the wire:\n%r\n%r' %
                  (n, v['string_to_sign'], candidate_strings(v, pairs)))
            check(dict(pairs)['Signature'] == v['signature'], '%s: wire signature' % n)
        else:
            check(v['want_error'] in ERROR_KINDS, n)
            check(got == v['want_error'], '%s: reference verifier says %s, want %s' %
                  (n, got, v['want_error']))
    mixed = [v for v in vectors if v['name'] == 'botocore-post-sha256-mixed-case-host'][0]
    pairs = wire_params(mixed['method'], mixed['target'], mixed['content_type'], mixed['body'])
    check(mixed['string_to_sign'] not in candidate_strings(mixed, pairs),
          'botocore mixed-case host unexpectedly rebuildable')


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--port', type=int, default=18773)
    args = ap.parse_args()
    srv = start_server(args.port, _Capture)
    port = srv.server_address[1]
    log('capture server on 127.0.0.1:%d; %s, %s' % (port, BOTO2, BOTOCORE))
    try:
        captured = collect(port)
    finally:
        srv.shutdown()
    for v in captured:
        log('%-52s %-4s Host=%-22s CT=%-50s UA=%s' % (
            v['name'], v['method'], v['host'], v['content_type'] or '-',
            v.get('_user_agent', '').split(' ')[0]))
    by_name = {v['name']: v for v in captured}
    vectors = captured + negatives(by_name)
    vectors.sort(key=lambda v: v['name'])
    vectors.insert(0, published_vector())
    self_check(vectors)
    emit(vectors, FIELD_ORDER, 28)


if __name__ == '__main__':
    run_main(main, 'capture_sigv2_vectors')

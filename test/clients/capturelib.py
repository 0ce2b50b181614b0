"""Shared parts of capture_sigv2_vectors.py and capture_sigv4_vectors.py (not a script).

The capture scripts import it from their own directory (Python puts the script's directory on
sys.path).  It imports no AWS client at module level: boto reads its configuration when imported,
so each script calls sanitise_environment() first and imports the clients after it.

What is here: environment sanitising, CaptureError/check/log, the fake credentials and the trap
DescribeInstances filters both scripts use, the loopback capture HTTP server (CaptureHandler,
start_server, CAPTURES), small vector helpers (request_vector, ascii_str, check_unique_names,
replace_once), the client helpers both use (boto2_filter_params, boto2_get, botocore_client) and
the output step (emit).
"""

import collections
import http.server
import json
import os
import re
import sys
import threading


def sanitise_environment(extra_prefixes=()):
    """Drop proxies and AWS_*/BOTO* (plus extra_prefixes) variables, point the clients' config
    files at /dev/null and disable instance metadata, so only the scripts' settings count."""
    prefixes = ('AWS_', 'BOTO') + tuple(extra_prefixes)
    for v in list(os.environ):
        if (v.lower() in ('http_proxy', 'https_proxy', 'all_proxy', 'no_proxy')
                or v.startswith(prefixes)):
            del os.environ[v]
    os.environ['BOTO_CONFIG'] = os.devnull            # boto: read no ~/.boto or /etc/boto.cfg
    os.environ['AWS_CONFIG_FILE'] = os.devnull        # botocore: no ~/.aws/config
    os.environ['AWS_SHARED_CREDENTIALS_FILE'] = os.devnull
    os.environ['AWS_EC2_METADATA_DISABLED'] = 'true'


class CaptureError(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise CaptureError(msg)


def log(msg):
    print(msg, file=sys.stderr)


def run_main(main, prog):
    """Run main(); a failed check exits non-zero with 'prog: FAILED: ...'."""
    try:
        main()
    except CaptureError as e:
        sys.exit('%s: FAILED: %s' % (prog, e))


# Fixed fake credentials (Keystone-style 32 hex chars).
KEY_A = ('0f3c6a1e9b2d4c58a7e1d3b5c9f20a64', '7d2e91b4c0a64f3e8b15d6a9c2e07f38')
KEY_B = ('5b8e2d7f1a9c4e3b6d0f2a8c4e6b1d93', 'e4a19c7b3f2d48e6a0b5c8d1f7e3a926')

# DescribeInstances filters: 12 filters so Filter.10..12 sort before Filter.2 (byte order), and
# values that exercise the encoding traps.
FILTERS = collections.OrderedDict([
    ('tag:Name', [
        'a b~c+d*e;f/g=h&i \u00e9\u4e2d',               # space ~ + * ; / = & e-acute CJK
        "100% !'()?#:@,$[]|^`{}\"<>\\",                 # reserved/unsafe ASCII
        '',                                             # empty value
        '   ',                                          # only spaces
        '\u00dcn\u00efc\u00f6d\u00e9-\u540d\u524d-\U0001F600',  # 2/3/4-byte UTF-8
    ]),
    ('instance-state-name', ['running', 'stopped']),
    ('instance-type', 'm1.small'),
    ('availability-zone', 'nova'),
    ('image-id', 'ami-00000001'),
    ('key-name', 'my key'),
    ('vpc-id', 'vpc-1'),
    ('subnet-id', 'subnet-1'),
    ('ip-address', '10.0.0.1'),
    ('tag-key', 'Owner'),
    ('tag:Owner', 'alice+bob@example.com'),
    ('tag:Empty', ''),
])
BOTOCORE_FILTERS = [{'Name': k, 'Values': v if isinstance(v, list) else [v]}
                    for k, v in FILTERS.items()]

# --- capture server -----------------------------------------------------------------------------
CAPTURES = []


class CaptureHandler(http.server.BaseHTTPRequestHandler):
    """Appends one dict per request to CAPTURES (method, target: the raw request target from the
    request line or None, transfer_encoding, body: raw bytes, plus what the script's
    request_fields() returns) and answers with a tiny valid EC2 XML response."""
    protocol_version = 'HTTP/1.1'

    def request_fields(self):
        """The script's header fields for the record; called before the body is read."""
        raise NotImplementedError

    def _handle(self):
        words = self.requestline.split(' ')
        rec = {'method': self.command, 'target': words[1] if len(words) == 3 else None}
        rec.update(self.request_fields())
        rec['transfer_encoding'] = self.headers.get('Transfer-Encoding')
        n = int(self.headers.get('Content-Length') or 0)
        rec['body'] = self.rfile.read(n) if n else b''
        CAPTURES.append(rec)
        m = re.search(r'(?:^|[?&])Action=([A-Za-z]+)', (rec['target'] or '') + '&' +
                      rec['body'].decode('latin-1'))
        action = m.group(1) if m else 'DescribeRegions'
        resp = ('<?xml version="1.0" encoding="UTF-8"?>\n'
                '<%sResponse xmlns="http://ec2.amazonaws.com/doc/2013-10-15/">'
                '<requestId>x</requestId></%sResponse>' % (action, action)).encode()
        self.send_response(200)
        self.send_header('Content-Type', 'text/xml;charset=UTF-8')
        self.send_header('Content-Length', str(len(resp)))
        self.end_headers()
        self.wfile.write(resp)

    do_GET = _handle
    do_POST = _handle

    def log_message(self, *args):
        pass


def start_server(port, handler):
    """Serve handler on 127.0.0.1:port in a daemon thread; a random free port if port is busy."""
    try:
        srv = http.server.ThreadingHTTPServer(('127.0.0.1', port), handler)
    except OSError as e:
        log('port %d unavailable (%s); using a random free port' % (port, e))
        srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


# --- vector helpers -----------------------------------------------------------------------------
def ascii_str(b, what, name):
    if isinstance(b, (bytes, bytearray)):
        try:
            return bytes(b).decode('ascii')
        except UnicodeDecodeError:
            raise CaptureError('%s: %s is not ASCII: %r' % (name, what, b))
    check(all(ord(c) < 128 for c in b), '%s: %s is not ASCII: %r' % (name, what, b))
    return b


def request_vector(cap, name, client):
    """Start a vector from a CAPTURES record: a whole request (no chunked body, a parsable request
    line); name, client, method and the ASCII target."""
    check(cap['transfer_encoding'] is None, '%s: Transfer-Encoding %r' %
          (name, cap['transfer_encoding']))
    check(cap['target'] is not None, '%s: bad request line' % name)
    return {'name': name, 'client': client, 'method': cap['method'],
            'target': ascii_str(cap['target'], 'target', name)}


def check_unique_names(vectors):
    names = [v['name'] for v in vectors]
    check(len(set(names)) == len(names), 'duplicate names')


def replace_once(s, old, new, what):
    check(s.count(old) == 1, '%s: %r occurs %d times' % (what, old, s.count(old)))
    return s.replace(old, new)


def emit(vectors, field_order, client_width):
    """Log the vector count per (client, valid), then write the vectors to stdout as a JSON array
    (2-space indent, keys in field_order, '_' keys dropped, non-ASCII as \\u escapes)."""
    counts = collections.Counter((v['client'], v['valid']) for v in vectors)
    for (client, valid), cnt in sorted(counts.items()):
        log('%-*s valid=%-5s %d' % (client_width, client, valid, cnt))
    out = json.dumps([_ordered(v, field_order) for v in vectors], indent=2, ensure_ascii=True)
    json.loads(out)
    sys.stdout.write(out + '\n')


def _ordered(v, field_order):
    unknown = set(k for k in v if not k.startswith('_')) - set(field_order)
    check(not unknown, 'unknown fields %s' % unknown)
    return collections.OrderedDict((k, v[k]) for k in field_order if k in v)


# --- clients ------------------------------------------------------------------------------------
def boto2_filter_params(conn):
    params = {}
    conn.build_filter_params(params, FILTERS)
    return params


def boto2_get(conn, action, params):
    resp = conn.make_request(action, params, '/', 'GET')
    resp.read()
    check(resp.status == 200, 'boto GET status %s' % resp.status)


def botocore_client(endpoint, key, region='RegionOne', **config):
    """An ec2 client without retries; config: further botocore Config options."""
    import botocore.session                       # late: after sanitise_environment()
    from botocore.config import Config
    session = botocore.session.Session()
    return session.create_client(
        'ec2', region_name=region, endpoint_url=endpoint,
        aws_access_key_id=key[0], aws_secret_access_key=key[1],
        config=Config(retries={'max_attempts': 0}, **config))

#!/usr/bin/python3
"""Compare two captures of known-answer vectors (capture_sigv2_vectors.py or
capture_sigv4_vectors.py output), ignoring what changes from one run to the next.

    /usr/bin/python3 test/clients/compare_vectors.py COMMITTED.json FRESH.json

Masked: the SigV2 Timestamp and the SigV4 X-Amz-Date and credential date, the
signatures and string-to-sign hashes computed over them (with their URL
encodings), the capture server's port, botocore's invocation-id UUIDs and the
kernel release in the clients' User-Agent (boto 2, botocore and awscli all name
it).  Everything else must be equal: vector names and order, keys and their
order, every field.  Prints each difference; exits 1 if there is any.  Both
files must be formatted exactly as the capture scripts write them.
"""
import json
import re
import sys
import urllib.parse


def volatile(vectors):
    """The values in one capture that change with its timestamps, longest first."""
    vals = set()
    for v in vectors:
        sig = v['signature']
        vals.add(sig)
        if 'timestamp' in v:  # SigV2: base64 signature, as clients encode it
            vals.add(urllib.parse.quote_plus(sig))
            vals.add(urllib.parse.quote(sig, safe='-_.~'))
            vals.add(urllib.parse.quote(sig, safe='-_~'))
        else:  # SigV4: hex signatures, and the string to sign's hash of the canonical request
            vals.add(v['string_to_sign'].split('\n')[-1])
            vals.update(re.findall(r'Signature=([0-9a-f]{64})', v['target']))
            for _, value in v['headers']:
                # [0-9a-fz]: a negative vector's non-hex signature starts with z's
                vals.update(re.findall(r'Signature=([0-9a-fz]{64})', value))
    return sorted(vals, key=len, reverse=True)


def mask(s, vals):
    if not isinstance(s, str):
        return s
    for x in vals:
        s = s.replace(x, '<SIG>')
    s = re.sub(r'\d{4}-\d\d-\d\dT\d\d(:|%3A)\d\d(:|%3A)\d\dZ', '<TS>', s)
    s = re.sub(r'\d{8}T\d{6}Z', '<AMZDATE>', s)
    s = re.sub(r'(?<![0-9])\d{8}(?=/|%2F)', '<DATE>', s)  # credential scope date, also in the string to sign
    s = re.sub(r'Credential date \d{8}', 'Credential date <DATE>', s)
    s = re.sub(r'\b(127\.0\.0\.1|localhost):\d+\b', r'\1:<PORT>', s, flags=re.I)
    s = re.sub(r'[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}', '<UUID>', s)
    # boto 2, botocore and awscli all name the kernel release in User-Agent
    s = re.sub(r'(Python/\S+) Linux/\S+', r'\1 Linux/<KERNEL>', s)
    return s


def normalise(obj, vals):
    if isinstance(obj, dict):
        return {k: normalise(x, vals) for k, x in obj.items()}
    if isinstance(obj, list):
        return [normalise(x, vals) for x in obj]
    return mask(obj, vals)


def load(path):
    with open(path, encoding='utf-8') as f:
        raw = f.read()
    data = json.loads(raw)
    if raw != json.dumps(data, indent=2, ensure_ascii=True) + '\n':
        sys.exit('%s: not formatted as the capture scripts write it' % path)
    return data


def main():
    if len(sys.argv) != 3:
        sys.exit('usage: compare_vectors.py COMMITTED.json FRESH.json')
    a, b = load(sys.argv[1]), load(sys.argv[2])
    na, nb = normalise(a, volatile(a)), normalise(b, volatile(b))
    diffs = 0
    names_a, names_b = [v['name'] for v in a], [v['name'] for v in b]
    if names_a != names_b:
        print('vector names or order differ; only in one of them: %s' % sorted(set(names_a) ^ set(names_b)))
        diffs += 1
    for x, y in zip(na, nb):
        if list(x) != list(y):
            print('%s: keys %s vs %s' % (x['name'], list(x), list(y)))
            diffs += 1
        for k in sorted(set(x) | set(y)):
            if x.get(k) != y.get(k):
                print('%s.%s:\n  committed: %r\n  fresh:     %r' % (x['name'], k, x.get(k), y.get(k)))
                diffs += 1
    print('%s vs %s: %d vs %d vectors, %d differences after masking' % (
        sys.argv[1], sys.argv[2], len(a), len(b), diffs))
    sys.exit(1 if diffs else 0)


if __name__ == '__main__':
    main()

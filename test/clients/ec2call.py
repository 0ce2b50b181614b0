#!/usr/bin/python3
"""Make one EC2 API call with a real client library and print the outcome as JSON.

Run with Debian's /usr/bin/python3 (python3-boto, python3-botocore). The Go
end-to-end tests drive real clients through it:

  /usr/bin/python3 test/clients/ec2call.py --client boto2 --sigv2 HmacSHA1 \
      --endpoint http://127.0.0.1:8773/services/Cloud/ --access AK --secret SK \
      --action DescribeAvailabilityZones

Output (one line): {"ok": true, "status": 200, "body": "..."} or
{"ok": false, "status": 403, "code": "SignatureDoesNotMatch", "message": "...", "body": "..."}.

Options:
  --client boto2|botocore     library to use
  --sigv2 HmacSHA256|HmacSHA1 force SigV2 with this method (boto 2.49 and
                              botocore default to SigV4)
  --verb GET|POST             boto2 only; botocore always POSTs
  --param Name=Value          extra request parameters (repeatable); with
                              botocore only Filter.N.Name / Filter.N.Value.M
  --header Name=Value         extra HTTP headers sent with the request
                              (botocore only), e.g. spoofed identity headers
  --clock-skew SECONDS        sign as if the clock were off by this much
  --tamper-body               botocore: change the body after signing
  --tamper-header Name=Value  botocore: set a header after signing
  --presign SECONDS           botocore: print {"url": ...}, a presigned GET URL
                              valid that long, instead of calling
  --calls N                   botocore: make the call N times in a row, with
                              botocore's own retries (legacy mode: up to 4,
                              after rand * 2^n s), each with a filter
                              ec2call-n=<its number> (two identical SigV2
                              calls in one second are the same bytes: replay
                              protection refuses the second); print the first
                              failure or the last success, with "retries":
                              the retries of all calls together
"""
import argparse
import json
import os
import re
import sys
import time
import urllib.parse


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("--client", choices=["boto2", "botocore"], required=True)
    p.add_argument("--sigv2", choices=["HmacSHA256", "HmacSHA1"])
    p.add_argument("--verb", choices=["GET", "POST"], default="POST")
    p.add_argument("--endpoint", required=True)
    p.add_argument("--access", default=os.environ.get("EC2_ACCESS_KEY"))
    p.add_argument("--secret", default=os.environ.get("EC2_SECRET_KEY"))
    p.add_argument("--region", default="RegionOne")
    p.add_argument("--action", default="DescribeRegions")
    p.add_argument("--param", action="append", default=[])
    p.add_argument("--header", action="append", default=[])
    p.add_argument("--clock-skew", type=float, default=0)
    p.add_argument("--tamper-body", action="store_true")
    p.add_argument("--tamper-header", action="append", default=[])
    p.add_argument("--presign", type=int, default=0)
    p.add_argument("--calls", type=int, default=1)
    return p.parse_args()


def skew_clock(seconds):
    if not seconds:
        return
    import datetime
    real_time, real_gmtime = time.time, time.gmtime
    time.time = lambda: real_time() + seconds
    time.gmtime = lambda t=None: real_gmtime(time.time() if t is None else t)
    delta = datetime.timedelta(seconds=seconds)
    real = datetime.datetime

    class Skewed(real):  # SigV4 signers read datetime, not time
        @classmethod
        def utcnow(cls):
            return real.utcnow() + delta

        @classmethod
        def now(cls, tz=None):
            return real.now(tz) + delta
    datetime.datetime = Skewed


def error_fields(status, body):
    code = re.search(r"<Code>(.*?)</Code>", body or "", re.S)
    msg = re.search(r"<Message>(.*?)</Message>", body or "", re.S)
    return {"ok": False, "status": status, "code": code.group(1) if code else "",
            "message": msg.group(1) if msg else "", "body": body}


def call_boto2(a, params):
    import boto
    from boto.ec2.connection import EC2Connection
    from boto.ec2.regioninfo import RegionInfo
    import boto.exception
    u = urllib.parse.urlsplit(a.endpoint)
    if a.sigv2:
        EC2Connection._required_auth_capability = lambda self: ["ec2"]
    conn = EC2Connection(a.access, a.secret, is_secure=(u.scheme == "https"),
                         region=RegionInfo(name=a.region, endpoint=u.hostname),
                         port=u.port, path=u.path or "/")
    conn.num_retries = 0  # boto 2 retries 5xx answers with back-off; report the first one
    if a.sigv2 == "HmacSHA1":
        conn._auth_handler._hmac_256 = None  # boto picks HmacSHA1 when SHA-256 is unavailable
    try:
        resp = conn.make_request(a.action, params, verb=a.verb)
    except boto.exception.BotoServerError as e:
        return error_fields(e.status, e.body if isinstance(e.body, str) else (e.body or b"").decode("utf-8", "replace"))
    body = resp.read().decode("utf-8", "replace")
    if resp.status != 200:
        return error_fields(resp.status, body)
    return {"ok": True, "status": resp.status, "body": body}


def call_botocore(a, params):
    import botocore.session
    from botocore.config import Config
    session = botocore.session.get_session()
    cfg = Config(signature_version="v2") if a.sigv2 else Config()
    client = session.create_client("ec2", region_name=a.region, endpoint_url=a.endpoint,
                                   aws_access_key_id=a.access, aws_secret_access_key=a.secret,
                                   config=cfg)
    if a.sigv2 == "HmacSHA1":
        raise SystemExit("botocore signs SigV2 with HmacSHA256 only")
    extra = dict(h.split("=", 1) for h in a.header)

    tampered = dict(h.split("=", 1) for h in a.tamper_header)

    def before_send(request, **kwargs):
        # Runs after signing: what is changed here is no longer what was signed.
        for k, v in list(extra.items()) + list(tampered.items()):
            request.headers[k] = v
        if a.tamper_body and request.body:
            body = request.body.decode() if isinstance(request.body, bytes) else request.body
            request.body = body.replace("Version=", "Version=1", 1).encode()
            request.headers["Content-Length"] = str(len(request.body))
    client.meta.events.register("before-send.ec2.*", before_send)
    result = {}

    def capture(http_response, **kwargs):
        result["status"] = http_response.status_code
        result["body"] = http_response.text
    client.meta.events.register("after-call.ec2.*", capture)
    kwargs = {}
    if params or a.presign:
        # botocore validates against its model: pass --param Filter.N.Name /
        # Filter.N.Value.M pairs as the Filters structure.
        filters = {}
        for k, v in params.items():
            m = re.match(r"Filter\.(\d+)\.(Name|Value\.\d+)$", k)
            if not m:
                raise SystemExit("botocore: only Filter.N.Name / Filter.N.Value.M parameters are supported")
            f = filters.setdefault(int(m.group(1)), {"Name": "", "Values": []})
            if m.group(2) == "Name":
                f["Name"] = v
            else:
                f["Values"].append(v)
        if filters:
            kwargs["Filters"] = [filters[n] for n in sorted(filters)]
    if a.presign:
        return {"ok": True, "url": client.generate_presigned_url(
            botocore_method(a.action), Params=kwargs, ExpiresIn=a.presign, HttpMethod="GET")}
    retries = 0
    for n in range(a.calls):
        if a.calls > 1:
            kwargs["Filters"] = [f for f in kwargs.get("Filters", []) if f["Name"] != "ec2call-n"] + \
                [{"Name": "ec2call-n", "Values": [str(n)]}]
        try:
            resp = getattr(client, botocore_method(a.action))(**kwargs)
            retries += resp["ResponseMetadata"].get("RetryAttempts", 0)
        except client.exceptions.ClientError as e:
            status = e.response["ResponseMetadata"]["HTTPStatusCode"]
            out = error_fields(status, result.get("body", ""))
            out["code"] = out["code"] or e.response["Error"]["Code"]
            out["retries"] = retries + e.response["ResponseMetadata"].get("RetryAttempts", 0)
            return out
    return {"ok": True, "status": result.get("status", 200), "body": result.get("body", ""), "retries": retries}


def botocore_method(action):
    return re.sub(r"(?<!^)(?=[A-Z])", "_", action).lower()


def main():
    a = parse_args()
    skew_clock(a.clock_skew)
    params = dict(p.split("=", 1) for p in a.param)
    try:
        out = call_boto2(a, params) if a.client == "boto2" else call_botocore(a, params)
    except Exception as e:  # report, do not crash: the Go test reads stdout
        out = {"ok": False, "status": 0, "code": "ClientException", "message": "%s: %s" % (type(e).__name__, e)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()

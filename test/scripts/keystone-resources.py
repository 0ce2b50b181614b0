#!/usr/bin/python3
"""Create the ec2proxy test resources in a running keystone, idempotently.

Usage (called by keystone-up.sh; run it with Debian's /usr/bin/python3):

    /usr/bin/python3 keystone-resources.py STATE_DIR BASE_URL

BASE_URL is http://127.0.0.1:PORT (without /v3). Authenticates as the
bootstrap admin (admin / admin-secret, project admin, domain Default) and
makes sure these exist:

  roles     service, heat_stack_user (member, reader: checked, created if
            missing)
  project   service (domain Default)
  user      ec2proxy / ec2proxy-secret (Default), role service on service
  domain    demo; project demo in it
  users     demo / demo-secret   (domain demo), role member on demo
            demo2 / demo-secret  (domain demo), no role at all
            stack / stack-secret (domain demo), only heat_stack_user on demo
  EC2 creds one for demo and one for stack on project demo, created by the
            user itself like `openstack ec2 credentials create` (reused on
            re-runs; the one named in the previous demo-ec2.env is kept)
  endpoint  identity public endpoint in RegionOne = BASE_URL/v3

Disabled users/projects/domains are re-enabled, and extra direct role
assignments of demo2 and stack are removed, so a re-run restores the state
tests expect. Passwords are set only on creation.

Writes STATE_DIR/keystone.env, STATE_DIR/demo-ec2.env and
STATE_DIR/admin-openrc.sh (export lines, values shell-quoted).
"""

import concurrent.futures
import json
import os
import shlex
import sys
import tempfile

from keystoneauth1 import exceptions as ksa_exc
from keystoneauth1 import session as ksa_session
from keystoneauth1.identity import v3

ADMIN_USER = "admin"
ADMIN_PASSWORD = "admin-secret"
ADMIN_PROJECT = "admin"
REGION = "RegionOne"

SERVICE_USER = "ec2proxy"
SERVICE_PASSWORD = "ec2proxy-secret"
SERVICE_PROJECT = "service"

DEMO_DOMAIN = "demo"
DEMO_PROJECT = "demo"
DEMO_PASSWORD = "demo-secret"
STACK_PASSWORD = "stack-secret"


class Keystone:
    """Admin session plus one bulk listing per collection.

    Everything is listed once (roles, domains, projects, users, role
    assignments, ec2 credentials) and checked locally, so a re-run costs one
    password login and six GETs even with KS_CACHE=none (~0.3-0.5 s per
    uncached request).
    """

    def __init__(self, base):
        self.base = base.rstrip("/")
        self.v3 = self.base + "/v3"
        auth = v3.Password(
            auth_url=self.v3,
            username=ADMIN_USER,
            password=ADMIN_PASSWORD,
            user_domain_id="default",
            project_name=ADMIN_PROJECT,
            project_domain_id="default",
        )
        self.sess = ksa_session.Session(auth=auth, timeout=60)
        self.changes = []

    def req(self, method, path, body=None, ok=(200, 201, 204), sess=None):
        s = sess or self.sess
        kw = {"raise_exc": False}
        if body is not None:
            kw["json"] = body
        r = s.request(self.v3 + path, method, **kw)
        if r.status_code not in ok:
            raise SystemExit(
                "keystone-resources: %s %s -> %s %s"
                % (method, path, r.status_code, r.text[:500])
            )
        if r.status_code == 204 or not r.content:
            return None
        return r.json()

    def load(self):
        # The listings are independent: fetch them concurrently, one per
        # uwsgi worker, which matters when every request re-validates the
        # admin token without a cache (~0.8 s each).
        paths = {
            "roles": "/roles", "domains": "/domains", "projects": "/projects",
            "users": "/users", "role_assignments": "/role_assignments",
            "credentials": "/credentials?type=ec2",
        }
        workers = max(1, min(len(paths), int(os.environ.get("KS_PROCESSES", "2") or 2)))
        with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
            futs = {k: pool.submit(self.req, "GET", v) for k, v in paths.items()}
            got = {k: f.result()[k] for k, f in futs.items()}
        self.roles = {r["name"]: r for r in got["roles"]}
        self.domains = {d["name"]: d for d in got["domains"]}
        self.projects = {(p["domain_id"], p["name"]): p for p in got["projects"]}
        self.users = {(u["domain_id"], u["name"]): u for u in got["users"]}
        self.assignments = got["role_assignments"]
        self.ec2 = got["credentials"]

    def _enable(self, collection, single, obj):
        if obj.get("enabled") is False:
            self.req("PATCH", "/%s/%s" % (collection, obj["id"]), {single: {"enabled": True}})
            self.changes.append("re-enabled %s %s" % (single, obj.get("name")))
        return obj

    def role(self, name, create=True):
        r = self.roles.get(name)
        if r is None and create:
            r = self.req("POST", "/roles", {"role": {"name": name}})["role"]
            self.roles[name] = r
            self.changes.append("created role %s" % name)
        return r

    def domain(self, name):
        d = self.domains.get(name)
        if d is None:
            d = self.req("POST", "/domains", {"domain": {"name": name, "enabled": True}})["domain"]
            self.domains[name] = d
            self.changes.append("created domain %s" % name)
        return self._enable("domains", "domain", d)

    def project(self, name, domain_id, create=True):
        p = self.projects.get((domain_id, name))
        if p is None:
            if not create:
                return None
            p = self.req("POST", "/projects", {"project": {
                "name": name, "domain_id": domain_id, "enabled": True}})["project"]
            self.projects[(domain_id, name)] = p
            self.changes.append("created project %s" % name)
        return self._enable("projects", "project", p)

    def user(self, name, domain_id, password=None, default_project_id=None):
        u = self.users.get((domain_id, name))
        if u is None:
            if password is None:
                return None
            create = {"name": name, "domain_id": domain_id, "password": password, "enabled": True}
            if default_project_id:
                create["default_project_id"] = default_project_id
            u = self.req("POST", "/users", {"user": create})["user"]
            self.users[(domain_id, name)] = u
            self.changes.append("created user %s" % name)
        return self._enable("users", "user", u)

    def user_assignments(self, user_id):
        """Direct assignments of a user: [(scope dict, role_id)]."""
        return [(a.get("scope", {}), a["role"]["id"]) for a in self.assignments
                if a.get("user", {}).get("id") == user_id]

    def grant(self, user, project_id, role):
        for scope, rid in self.user_assignments(user["id"]):
            if rid == role["id"] and scope.get("project", {}).get("id") == project_id:
                return
        self.req("PUT", "/projects/%s/users/%s/roles/%s" % (project_id, user["id"], role["id"]))
        self.changes.append("granted role %s to %s" % (role["name"], user["name"]))

    def exact_roles(self, user, project_id, roles):
        """Make the direct assignments of user exactly `roles` on project_id."""
        keep = {r["id"] for r in roles}
        for scope, rid in self.user_assignments(user["id"]):
            pid = scope.get("project", {}).get("id")
            if pid == project_id and rid in keep:
                continue
            if pid is not None:
                path = "/projects/%s/users/%s/roles/%s" % (pid, user["id"], rid)
            elif "domain" in scope:
                path = "/domains/%s/users/%s/roles/%s" % (scope["domain"]["id"], user["id"], rid)
            elif "system" in scope:
                path = "/system/users/%s/roles/%s" % (user["id"], rid)
            else:
                continue
            self.req("DELETE", path)
            self.changes.append("removed extra role assignment %s %s of %s" % (rid, scope, user["name"]))
        for r in roles:
            self.grant(user, project_id, r)

    def ec2_credential(self, user, project, password, domain_id, prefer_access):
        """Return (access, secret) of an ec2 credential of user on project."""
        found = []
        for c in sorted(self.ec2, key=lambda c: c["id"]):
            if c.get("user_id") != user["id"] or c.get("project_id") != project["id"]:
                continue
            try:
                blob = json.loads(c["blob"])
            except (TypeError, ValueError):
                continue
            if blob.get("trust_id") or blob.get("app_cred_id") or blob.get("access_token_id"):
                continue
            if blob.get("access") and blob.get("secret"):
                found.append((blob["access"], blob["secret"]))
        for access, secret in found:
            if access == prefer_access:
                return access, secret
        if found:
            return found[0]
        # Create it as the user itself, like `openstack ec2 credentials create`
        # run as that user (the API generates 32-hex access and secret).
        auth = v3.Password(
            auth_url=self.v3, username=user["name"], password=password,
            user_domain_id=domain_id, project_id=project["id"],
        )
        usess = ksa_session.Session(auth=auth, timeout=60)
        r = usess.post(
            self.v3 + "/users/%s/credentials/OS-EC2" % user["id"],
            json={"tenant_id": project["id"]}, raise_exc=False,
        )
        if r.status_code == 201:
            c = r.json()["credential"]
            self.changes.append("created ec2 credential for %s" % user["name"])
            return c["access"], c["secret"]
        # Fallback: as admin, with an explicit blob (keystone-real.md §3).
        access, secret = os.urandom(16).hex(), os.urandom(16).hex()
        self.req("POST", "/credentials", {"credential": {
            "type": "ec2", "user_id": user["id"], "project_id": project["id"],
            "blob": json.dumps({"access": access, "secret": secret}),
        }})
        self.changes.append(
            "created ec2 credential for %s as admin (user-self create gave %s)"
            % (user["name"], r.status_code))
        return access, secret

    def ensure_endpoint(self):
        """The identity public endpoint in REGION must be BASE/v3.

        Read from the admin token's catalog, so this costs no request unless
        something must change.
        """
        want = self.v3
        catalog = self.sess.auth.get_access(self.sess).service_catalog.catalog
        svc = next((s for s in catalog if s.get("type") == "identity"), None)
        if svc is None:
            raise SystemExit("keystone-resources: no identity service in the catalog (bootstrap failed?)")
        eps = [e for e in svc.get("endpoints", [])
               if e.get("interface") == "public" and e.get("region_id") == REGION]
        if not eps:
            self.req("POST", "/endpoints", {"endpoint": {
                "service_id": svc["id"], "interface": "public", "region_id": REGION, "url": want}})
            self.changes.append("created public endpoint %s" % want)
        elif eps[0]["url"] != want:
            self.req("PATCH", "/endpoints/%s" % eps[0]["id"], {"endpoint": {"url": want}})
            self.changes.append("updated public endpoint to %s" % want)


def read_env(path):
    out = {}
    try:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line.startswith("export ") and "=" in line:
                    k, v = line[len("export "):].split("=", 1)
                    try:
                        v = shlex.split(v)[0] if v else ""
                    except (ValueError, IndexError):
                        continue
                    out[k] = v
    except OSError:
        pass
    return out


def write_env(path, pairs, header):
    lines = ["# %s" % h for h in header]
    lines += ["export %s=%s" % (k, shlex.quote(str(v))) for k, v in pairs]
    d = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=os.path.basename(path) + ".")
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def main():
    if len(sys.argv) != 3:
        raise SystemExit("usage: keystone-resources.py STATE_DIR BASE_URL")
    state, base = sys.argv[1], sys.argv[2].rstrip("/")
    ks = Keystone(base)
    try:
        ks.sess.get_token()
    except ksa_exc.ClientException as e:
        raise SystemExit("keystone-resources: admin login failed: %s" % e)

    ks.ensure_endpoint()
    ks.load()

    roles = {}
    for name in ("admin", "member", "reader", "service", "heat_stack_user"):
        roles[name] = ks.role(name, create=(name != "admin"))
        if roles[name] is None:
            raise SystemExit("keystone-resources: role %s missing (bootstrap failed?)" % name)

    admin_user = ks.user(ADMIN_USER, "default")
    admin_project = ks.project(ADMIN_PROJECT, "default", create=False)
    if admin_user is None or admin_project is None:
        raise SystemExit("keystone-resources: admin user/project missing (bootstrap failed?)")

    service_project = ks.project(SERVICE_PROJECT, "default")
    service_user = ks.user(SERVICE_USER, "default", SERVICE_PASSWORD, service_project["id"])
    ks.grant(service_user, service_project["id"], roles["service"])

    demo_domain = ks.domain(DEMO_DOMAIN)
    demo_project = ks.project(DEMO_PROJECT, demo_domain["id"])
    demo = ks.user("demo", demo_domain["id"], DEMO_PASSWORD, demo_project["id"])
    demo2 = ks.user("demo2", demo_domain["id"], DEMO_PASSWORD)
    stack = ks.user("stack", demo_domain["id"], STACK_PASSWORD, demo_project["id"])
    ks.grant(demo, demo_project["id"], roles["member"])
    ks.exact_roles(demo2, demo_project["id"], [])
    ks.exact_roles(stack, demo_project["id"], [roles["heat_stack_user"]])

    prev = read_env(os.path.join(state, "demo-ec2.env"))
    demo_access, demo_secret = ks.ec2_credential(
        demo, demo_project, DEMO_PASSWORD, demo_domain["id"], prev.get("DEMO_EC2_ACCESS"))
    stack_access, stack_secret = ks.ec2_credential(
        stack, demo_project, STACK_PASSWORD, demo_domain["id"], prev.get("STACK_EC2_ACCESS"))

    p = "EC2PROXY_TEST_KEYSTONE_"
    write_env(os.path.join(state, "keystone.env"), [
        (p + "URL", base),
        (p + "REGION", REGION),
        (p + "SERVICE_USER", SERVICE_USER),
        (p + "SERVICE_PASSWORD", SERVICE_PASSWORD),
        (p + "SERVICE_PROJECT", SERVICE_PROJECT),
        (p + "SERVICE_DOMAIN", "Default"),
        (p + "SERVICE_DOMAIN_ID", "default"),
        (p + "SERVICE_USER_ID", service_user["id"]),
        (p + "SERVICE_PROJECT_ID", service_project["id"]),
        (p + "ADMIN_USER", ADMIN_USER),
        (p + "ADMIN_PASSWORD", ADMIN_PASSWORD),
        (p + "ADMIN_PROJECT", ADMIN_PROJECT),
        (p + "ADMIN_USER_ID", admin_user["id"]),
        (p + "ADMIN_PROJECT_ID", admin_project["id"]),
        (p + "DEFAULT_DOMAIN_ID", "default"),
        (p + "DEMO_DOMAIN", DEMO_DOMAIN),
        (p + "DEMO_DOMAIN_ID", demo_domain["id"]),
        (p + "DEMO_PROJECT", DEMO_PROJECT),
        (p + "DEMO_PROJECT_ID", demo_project["id"]),
        (p + "DEMO_USER", "demo"),
        (p + "DEMO_PASSWORD", DEMO_PASSWORD),
        (p + "DEMO_USER_ID", demo["id"]),
        (p + "DEMO2_USER", "demo2"),
        (p + "DEMO2_PASSWORD", DEMO_PASSWORD),
        (p + "DEMO2_USER_ID", demo2["id"]),
        (p + "STACK_USER", "stack"),
        (p + "STACK_PASSWORD", STACK_PASSWORD),
        (p + "STACK_USER_ID", stack["id"]),
        (p + "ROLE_ADMIN_ID", roles["admin"]["id"]),
        (p + "ROLE_MEMBER_ID", roles["member"]["id"]),
        (p + "ROLE_READER_ID", roles["reader"]["id"]),
        (p + "ROLE_SERVICE_ID", roles["service"]["id"]),
        (p + "ROLE_HEAT_STACK_USER_ID", roles["heat_stack_user"]["id"]),
        (p + "AUTH_TTL_MINUTES", os.environ.get("KS_AUTH_TTL", "15")),
        (p + "CACHE", os.environ.get("KS_CACHE", "memory_pickle")),
        (p + "CACHE_TTL", "0" if os.environ.get("KS_CACHE") == "none"
         else os.environ.get("KS_CACHE_TTL", "5")),
        (p + "INSECURE_DEBUG", os.environ.get("KS_INSECURE_DEBUG_NORM", "false")),
        (p + "STATE_DIR", state),
    ], ["written by test/scripts/keystone-up.sh; source it"])

    write_env(os.path.join(state, "demo-ec2.env"), [
        ("DEMO_EC2_ACCESS", demo_access),
        ("DEMO_EC2_SECRET", demo_secret),
        ("DEMO_USER_ID", demo["id"]),
        ("DEMO_PROJECT_ID", demo_project["id"]),
        ("DEMO_USER_DOMAIN_ID", demo_domain["id"]),
        ("DEMO_PROJECT_DOMAIN_ID", demo_domain["id"]),
        ("STACK_EC2_ACCESS", stack_access),
        ("STACK_EC2_SECRET", stack_secret),
        ("STACK_USER_ID", stack["id"]),
        ("STACK_PROJECT_ID", demo_project["id"]),
    ], ["written by test/scripts/keystone-up.sh; source it"])

    write_env(os.path.join(state, "admin-openrc.sh"), [
        ("OS_AUTH_URL", base + "/v3"),
        ("OS_AUTH_TYPE", "password"),
        ("OS_IDENTITY_API_VERSION", "3"),
        ("OS_USERNAME", ADMIN_USER),
        ("OS_PASSWORD", ADMIN_PASSWORD),
        ("OS_PROJECT_NAME", ADMIN_PROJECT),
        ("OS_USER_DOMAIN_NAME", "Default"),
        ("OS_PROJECT_DOMAIN_NAME", "Default"),
        ("OS_REGION_NAME", REGION),
        ("OS_INTERFACE", "public"),
    ], ["admin credentials for /usr/bin/openstack; written by test/scripts/keystone-up.sh",
        "usage: . admin-openrc.sh && /usr/bin/openstack token issue"])

    for c in ks.changes:
        print("keystone-resources: " + c, file=sys.stderr)


if __name__ == "__main__":
    main()

"""The critical path of one cloudgrant run, from the latency proxy's request log.

Two numbers, computed on the calls the proxy delayed (the cloud APIs; the Kubernetes API and
the report endpoint are not delayed and not counted):

- observed: the longest chain of calls each of which started after the previous one had
  ended, from the proxy's timestamps. It is the depth of the schedule the agent actually
  ran: calls the agent serialized without need make it longer.
- dependency (the one the targets use): the longest chain of calls each of which needs the
  one before, by what the call needs to be made: a bearer token, the account id in an ARN,
  the id of an object an earlier call created, the etag an earlier read returned, the read
  that decided a write was needed, the operation a poll waits for, the previous read of a
  confirmation pair. The rules are per provider (below), written from the APIs' contracts,
  not from the agent's code; a call no rule knows depends, conservatively, on every call
  that had ended before it started (as in the observed chain), so an unknown call can never
  make the critical path shorter than the truth.

Where a call's observed depth exceeds its dependency depth, the agent waited for something it
did not need: `serialized()` names those calls and what they waited behind.
"""
import re
import urllib.parse

EPS = 0.0005  # 0.5 ms: the proxy's own timestamps, taken in different threads
# A gap this long between a call's end and the next call's start is one of the agent's
# timers (its confirmation pauses and operation polls are 200 ms and more), not the agent
# working: on a busy machine, work between two calls can take a few tens of milliseconds.
WAIT_MS = 100


def label(e):
    """A short human name of a logged call."""
    if e.get("action"):
        p = e.get("params", {})
        who = p.get("UserName") or p.get("RoleName") or p.get("PolicyName") or \
            (p.get("PolicyArn", "").rsplit("/", 1)[-1] if p.get("PolicyArn") else "")
        return "%s %s" % (e["action"], who) if who else e["action"]
    path = e.get("path", "")
    if re.search(r"/oauth2/v2\.0/token$", path) or path == "/token":
        scope = e.get("params", {}).get("scope", "")
        short = "graph" if "graph" in scope else "arm" if "management" in scope else ""
        return "token" + (" (%s)" % short if short else "")
    path = re.sub(r"/subscriptions/[0-9a-f-]{36}", "/subscriptions/…", path)
    path = re.sub(r"/projects/[a-z0-9-]+", "/projects/…", path)
    path = re.sub(r"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})", "…", path)
    path = re.sub(r"@[a-z0-9-]+\.iam\.gserviceaccount\.com", "@…", path)
    path = re.sub(r"/operations/[^/]+$", "/operations/…", path)
    return "%s %s" % (e["method"], path)


class Run:
    """The delayed calls of one run, in start order, with their dependency and observed
    depths."""

    def __init__(self, entries, provider):
        self.calls = sorted([e for e in entries if e.get("delayed") and e["method"] != "CONNECT"],
                            key=lambda e: (e["t_first"], e["seq"]))
        self.provider = provider
        rules = RULES.get(provider.split("-")[0])
        for i, c in enumerate(self.calls):
            before = [d for d in self.calls[:i] if d["t_done"] <= c["t_first"] + EPS]
            c["_before"] = before
            c["_obs"] = 1 + max((d["_obs"] for d in before), default=0)
            deps = rules(c, before) if rules else None
            if deps is None:  # no rule: conservative
                deps = before
                c["_rule"] = "unknown"
            c["_deps"] = deps
            c["_dep"] = 1 + max((d["_dep"] for d in deps), default=0)

    def dependency_path(self):
        return max((c["_dep"] for c in self.calls), default=0)

    def observed_path(self):
        return max((c["_obs"] for c in self.calls), default=0)

    def unknown(self):
        return [label(c) for c in self.calls if c.get("_rule") == "unknown"]

    def chain(self, key="_obs"):
        """One longest chain (by observed or dependency depth), first call first."""
        if not self.calls:
            return []
        cur = max(self.calls, key=lambda c: (c[key], c["t_done"]))
        out = [cur]
        pool = "_before" if key == "_obs" else "_deps"
        while cur[key] > 1:
            prev = [d for d in cur[pool] if d[key] == cur[key] - 1]
            cur = max(prev, key=lambda d: d["t_done"])
            out.append(cur)
        return list(reversed(out))

    def ancestors(self, c):
        seen, todo = set(), list(c["_deps"])
        while todo:
            d = todo.pop()
            if id(d) not in seen:
                seen.add(id(d))
                todo.extend(d["_deps"])
        return seen

    def serialized(self):
        """Calls that waited for something they do not need: each started in a later round
        of the schedule than its own dependencies allow (one round after the latest of them
        ended), so everything behind it was pushed back too. Each entry names the call, the
        call it waited behind (the last one to end before it started) and what it needs.
        Calls that are merely late because a dependency was late are not listed: the
        entries are the causes."""
        out = []
        for c in self.calls:
            if c.get("_rule") == "unknown":
                continue
            allowed = 1 + max((d["_obs"] for d in c["_deps"]), default=0)
            if c["_obs"] <= allowed:
                continue
            behind = max(c["_before"], key=lambda d: d["t_done"]) if c["_before"] else None
            if behind is not None and (c["t_first"] - behind["t_done"]) * 1000 >= WAIT_MS:
                continue  # started on a timer of its own, long after: a wait, not a queue
            out.append({"call": label(c), "waited_behind": label(behind) if behind else None,
                        "observed_round": c["_obs"], "allowed_round": allowed,
                        "needs": sorted({label(d) for d in c["_deps"]}) or ["nothing"],
                        "on_critical_path": c in self.chain("_obs")})
        return out

    def slack(self):
        """Every call that started later than its dependencies allow (on the critical chain
        or not)."""
        return [{"call": label(c), "observed_depth": c["_obs"], "dependency_depth": c["_dep"]}
                for c in self.calls if c["_obs"] > c["_dep"] and c.get("_rule") != "unknown"]


def _latest(before, pred):
    cand = [d for d in before if pred(d)]
    return max(cand, key=lambda d: d["t_done"]) if cand else None


def _deps(*calls):
    return [c for c in calls if c is not None]


def _repeat(c, before, same):
    """A repeated read of the same thing (a poll, the second read of a confirmation pair)
    needs the previous one."""
    return _latest(before, lambda d: same(d) and d["method"] == c["method"])


# ---- AWS (IAM and STS query API: the Action and its resource parameters) ------------------

def _p(e, k):
    return e.get("params", {}).get(k)


def _principal(e):
    return _p(e, "UserName") or _p(e, "RoleName")


def _policy_key(e):
    """The customer policy a call is about: its name (the last part of the ARN)."""
    arn = _p(e, "PolicyArn")
    if arn:
        return None if ":aws:policy/" in arn else arn.rsplit("/", 1)[-1]
    if e.get("action") in ("CreatePolicy",):
        return _p(e, "PolicyName")
    return None


AWS_PRINCIPAL_READS = {"GetUser", "GetRole", "ListAttachedUserPolicies",
                       "ListAttachedRolePolicies", "ListUserPolicies", "ListRolePolicies",
                       "ListAccessKeys", "GetUserPolicy", "GetRolePolicy", "ListUserTags",
                       "ListRoleTags", "ListInstanceProfilesForRole", "ListMFADevices",
                       "ListSigningCertificates", "ListSSHPublicKeys",
                       "ListServiceSpecificCredentials", "GetLoginProfile"}
AWS_PRINCIPAL_WRITES = {"CreateUser", "CreateRole", "TagUser", "TagRole", "UntagUser",
                        "UntagRole", "UpdateAssumeRolePolicy", "AttachUserPolicy",
                        "AttachRolePolicy", "DetachUserPolicy", "DetachRolePolicy",
                        "PutUserPolicy", "PutRolePolicy", "DeleteUserPolicy",
                        "DeleteRolePolicy", "CreateAccessKey", "DeleteAccessKey",
                        "UpdateAccessKey", "DeleteUser", "DeleteRole"}
AWS_POLICY_CALLS = {"GetPolicy", "GetPolicyVersion", "ListPolicyVersions", "CreatePolicy",
                    "CreatePolicyVersion", "DeletePolicyVersion", "SetDefaultPolicyVersion",
                    "TagPolicy", "UntagPolicy", "ListPolicyTags", "ListEntitiesForPolicy",
                    "DeletePolicy"}
# the read whose answer decides whether a write is needed, by write
AWS_DECIDED_BY = {
    "CreateUser": ("GetUser",), "CreateRole": ("GetRole",),
    "TagUser": ("GetUser", "ListUserTags"), "TagRole": ("GetRole", "ListRoleTags"),
    "UntagUser": ("GetUser", "ListUserTags"), "UntagRole": ("GetRole", "ListRoleTags"),
    "UpdateAssumeRolePolicy": ("GetRole",),
    "AttachUserPolicy": ("ListAttachedUserPolicies",),
    "AttachRolePolicy": ("ListAttachedRolePolicies",),
    "DetachUserPolicy": ("ListAttachedUserPolicies",),
    "DetachRolePolicy": ("ListAttachedRolePolicies",),
    "PutUserPolicy": ("GetUserPolicy", "ListUserPolicies"),
    "PutRolePolicy": ("GetRolePolicy", "ListRolePolicies"),
    "DeleteUserPolicy": ("ListUserPolicies",), "DeleteRolePolicy": ("ListRolePolicies",),
    "CreateAccessKey": ("ListAccessKeys",), "DeleteAccessKey": ("ListAccessKeys",),
    "UpdateAccessKey": ("ListAccessKeys",),
    "CreatePolicy": ("GetPolicy",), "CreatePolicyVersion": ("GetPolicyVersion",),
    "DeletePolicyVersion": ("ListPolicyVersions",), "TagPolicy": ("GetPolicy",),
    "UntagPolicy": ("GetPolicy",),
}


def aws_rules(c, before):
    act = c.get("action")
    if act is None:
        return None
    sts = _latest(before, lambda d: d.get("action") == "GetCallerIdentity")
    if act == "GetCallerIdentity":
        return []
    who = _principal(c)
    pol = _policy_key(c)
    deps = []
    # the object a call addresses must exist: the latest write to it (or read confirming it)
    if who is not None:
        if act in AWS_PRINCIPAL_READS:
            # a read after a write of the same principal sees that write; reading the same
            # thing again (the second read of a confirmation) needs the first
            deps.append(_latest(before, lambda d: _principal(d) == who and
                                d.get("action") in AWS_PRINCIPAL_WRITES and
                                d.get("action") not in ("CreateAccessKey",)))
            deps.append(_repeat(c, before, lambda d: d.get("action") == act and
                                _principal(d) == who and d.get("params") == c.get("params")))
        else:
            # a write needs the principal to exist: its creation, or the read that saw it
            # (after a creation, the read that confirmed it)
            deps.append(_latest(before, lambda d: _principal(d) == who and (
                d.get("action") in ("CreateUser", "CreateRole") or
                (d.get("action") in ("GetUser", "GetRole") and d.get("status") == 200))))
    if act not in AWS_PRINCIPAL_READS and act not in ("GetPolicy", "GetPolicyVersion",
                                                      "ListPolicyVersions"):
        # a write sent again after IAM refused it (NoSuchEntity while a new user or policy
        # propagates) waits for that refusal
        deps.append(_repeat(c, before, lambda d: d.get("action") == act and
                            d.get("params") == c.get("params") and
                            (d.get("status") or 0) >= 400))
    if pol is not None:
        # the ARN carries the account: GetCallerIdentity; the policy must exist
        deps.append(sts)
        deps.append(_latest(before, lambda d: _policy_key(d) == pol and d.get("action") in (
            "CreatePolicy", "CreatePolicyVersion", "DeletePolicyVersion",
            "SetDefaultPolicyVersion")))
        if act == "GetPolicyVersion":
            deps.append(_latest(before, lambda d: _policy_key(d) == pol and
                                d.get("action") in ("GetPolicy", "ListPolicyVersions")))
        if act in ("GetPolicy", "ListPolicyVersions"):
            deps.append(_repeat(c, before, lambda d: d.get("action") == act and
                                _policy_key(d) == pol))
    if act in ("PutUserPolicy", "PutRolePolicy", "CreateRole", "UpdateAssumeRolePolicy",
               "CreatePolicyVersion"):
        deps.append(sts)  # documents are templated with the account
    for read in AWS_DECIDED_BY.get(act, ()):
        deps.append(_latest(before, lambda d: d.get("action") == read and (
            (who is not None and _principal(d) == who) or
            (pol is not None and _policy_key(d) == pol))))
    if act in ("CreateAccessKey",):
        # IAM's two-key limit: a key being replaced is deleted first
        deps.append(_latest(before, lambda d: d.get("action") == "DeleteAccessKey" and
                            _principal(d) == who))
    if who is None and pol is None and act not in AWS_PRINCIPAL_READS | AWS_POLICY_CALLS:
        return None
    return _deps(*deps)


# ---- GCP (IAM, Service Usage, Resource Manager REST; OAuth token) --------------------------

def _gcp_api(e):
    p = e.get("path", "")
    if p == "/token":
        return "token"
    m = re.match(r"/(iam|serviceusage|crm)/", p)
    return m.group(1) if m else None


def _gcp_sa(e):
    m = re.search(r"/serviceAccounts/([^/:]+)", e.get("path", ""))
    return urllib.parse.unquote(m.group(1)) if m else None


def _gcp_role(e):
    m = re.search(r"/roles/([^/:]+)", e.get("path", ""))
    return m.group(1) if m else None


def gcp_rules(c, before):
    api = _gcp_api(c)
    path, method = c.get("path", ""), c["method"]
    if api is None:
        return None
    if api == "token":
        return []
    token = _latest(before, lambda d: _gcp_api(d) == "token")
    deps = [token]
    # APIs enabled in this run: every later call of that API waits for the operation, and
    # for the reads that confirm the API answers (SERVICE_DISABLED right after enabling)
    op_done = _latest(before, lambda d: "/serviceusage/v1/operations/" in d.get("path", ""))
    confirm_iam = lambda d: d["method"] == "GET" and re.fullmatch(
        r"/iam/v1/projects/[^/]+/serviceAccounts", d.get("path", "")) is not None
    confirm_crm = lambda d: d["method"] == "GET" and re.fullmatch(
        r"/crm/v1/projects/[^/:]+", d.get("path", "")) is not None
    is_confirm = confirm_iam(c) or confirm_crm(c)
    if api == "serviceusage":
        if ":batchEnable" in path or path.endswith(":enable"):
            deps.append(_latest(before, lambda d: ":batchGet" in d.get("path", "") or
                                d.get("path", "").endswith("/services")))
        elif "/operations/" in path:
            deps.append(_latest(before, lambda d: ":batchEnable" in d.get("path", "") or
                                d.get("path", "").endswith(":enable") or
                                d.get("path") == path))
        return _deps(*deps)
    if op_done is not None:
        deps.append(op_done)
        if not is_confirm:
            deps.append(_latest(before, confirm_iam if api == "iam" else confirm_crm))
    if is_confirm:
        deps.append(_repeat(c, before, lambda d: d.get("path") == path))
        return _deps(*deps)
    sa = _gcp_sa(c)
    role = _gcp_role(c)
    sa_write = lambda d: d["method"] == "POST" and re.fullmatch(
        r"/iam/v1/projects/[^/]+/serviceAccounts", d.get("path", "")) is not None
    sa_get = lambda name: (lambda d: d["method"] == "GET" and _gcp_sa(d) == name and
                           d.get("path", "").endswith(name))
    if sa is not None:
        # the account must exist (created in this run: the create and the confirming reads)
        deps.append(_latest(before, sa_write))
        if method == "GET" and path.endswith(sa):
            deps.append(_repeat(c, before, lambda d: d.get("path") == path))
        else:
            # after creating the account: the reads that confirmed it exists
            made = [w["t_done"] for w in before if sa_write(w)]
            if made:
                deps.append(_latest(before, lambda d: sa_get(sa)(d) and d.get("status") == 200
                                    and d["t_first"] > max(made)))
        if method == "POST" and path.endswith("/keys"):
            deps.append(_latest(before, lambda d: d["method"] == "GET" and
                                d.get("path", "").endswith(sa + "/keys")))
        if method == "DELETE" and "/keys/" in path:
            deps.append(_latest(before, lambda d: d["method"] in ("GET", "POST") and
                                "/keys" in d.get("path", "") and _gcp_sa(d) == sa))
        if path.endswith(":setIamPolicy"):
            deps.append(_latest(before, lambda d: d.get("path") == path.replace(
                ":setIamPolicy", ":getIamPolicy")))
        return _deps(*deps)
    if sa_write(c):
        # creating the account was decided by reading it
        deps.append(_latest(before, lambda d: d["method"] == "GET" and re.search(
            r"/serviceAccounts/[^/:]+$", d.get("path", "")) is not None))
        return _deps(*deps)
    if role is not None or re.fullmatch(r"/iam/v1/projects/[^/]+/roles", path):
        if method != "GET":
            deps.append(_latest(before, lambda d: d["method"] == "GET" and (
                _gcp_role(d) == role or (role is None and _gcp_role(d) is not None))))
        else:
            deps.append(_latest(before, lambda d: d["method"] != "GET" and
                                _gcp_role(d) == role))
        return _deps(*deps)
    if path.endswith(":getIamPolicy"):
        deps.append(_latest(before, lambda d: d.get("path") == path.replace(
            ":getIamPolicy", ":setIamPolicy")))  # a re-read after a conflict
        return _deps(*deps)
    if path.endswith(":setIamPolicy"):
        # the etag of the read; the members and custom roles it binds must exist
        deps.append(_latest(before, lambda d: d.get("path") == path.replace(
            ":setIamPolicy", ":getIamPolicy")))
        deps.append(_latest(before, sa_write))
        created = [w["t_done"] for w in before if sa_write(w)]
        if created:
            deps.append(_latest(before, lambda d: d["method"] == "GET" and
                                _gcp_sa(d) is not None and d["t_first"] > max(created) and
                                d.get("path", "").endswith(_gcp_sa(d))))
        deps.append(_latest(before, lambda d: d["method"] in ("POST", "PATCH") and (
            re.fullmatch(r"/iam/v1/projects/[^/]+/roles", d.get("path", "")) is not None or
            (_gcp_role(d) is not None and d["method"] == "PATCH") or
            d.get("path", "").endswith(":undelete"))))
        return _deps(*deps)
    if method == "GET":
        return _deps(*deps)
    return None


# ---- Azure (Entra token endpoint, Microsoft Graph, ARM) -----------------------------------

def _az_api(e):
    p = e.get("path", "")
    if re.search(r"/oauth2/v2\.0/token$", p):
        return "token"
    if p.startswith("/v1.0/"):
        return "graph"
    if p.startswith("/subscriptions/"):
        return "arm"
    return None


def _az_token_for(api):
    key = "graph.microsoft.com" if api == "graph" else "management.azure.com"
    return lambda d: _az_api(d) == "token" and key in d.get("params", {}).get("scope", "")


def _az_app(e):
    m = re.match(r"/v1\.0/applications(?:\(uniqueName='[^']*'\)|/([0-9a-f-]{36}))", e["path"])
    return m is not None


def azure_rules(c, before):
    api = _az_api(c)
    if api is None:
        return None
    if api == "token":
        return []
    path, method, query = c["path"], c["method"], c.get("query", "")
    deps = [_latest(before, _az_token_for(api))]
    if _latest(before, _az_token_for(api)) is None:
        deps.append(_latest(before, lambda d: _az_api(d) == "token"))
    # the cluster's name (every name and id the profile renders) comes from the node resource
    # group's AKS tags when the nodes do not tell it
    is_rg = api == "arm" and re.fullmatch(r"/subscriptions/[^/]+/resourceGroups/[^/]+",
                                           path) is not None and method == "GET"
    if not is_rg:
        deps.append(_latest(before, lambda d: _az_api(d) == "arm" and d["method"] == "GET" and
                            re.fullmatch(r"/subscriptions/[^/]+/resourceGroups/[^/]+",
                                         d["path"]) is not None))
    app_write = lambda d: d["method"] in ("PATCH", "POST") and d["path"].startswith(
        "/v1.0/applications") and not d["path"].endswith(("addPassword", "removePassword")) \
        and "federatedIdentityCredentials" not in d["path"]
    app_any = lambda d: d["path"].startswith("/v1.0/applications") and (
        app_write(d) or (d["method"] == "GET" and d.get("status") == 200 and _az_app(d)))
    sp_any = lambda d: d["path"].startswith("/v1.0/servicePrincipals") and (
        d["method"] == "POST" or d.get("status") in (200, 201))
    if api == "graph":
        if path.startswith("/v1.0/applications"):
            if method == "GET" and "uniqueName" in path or path == "/v1.0/applications":
                deps.append(_repeat(c, before, lambda d: d["path"] == path))
            elif app_write(c) and "uniqueName" in path:
                deps.append(_latest(before, lambda d: d["method"] == "GET" and
                                    d["path"].startswith("/v1.0/applications")))
            else:  # addPassword, removePassword, federated credentials, by object id
                deps.append(_latest(before, app_any))
                if path.endswith("removePassword"):
                    deps.append(_latest(before, lambda d: d["path"].endswith("addPassword")))
                if "federatedIdentityCredentials" in path and method != "GET":
                    deps.append(_latest(before, lambda d: d["method"] == "GET" and
                                        "federatedIdentityCredentials" in d["path"]))
            return _deps(*deps)
        if path.startswith("/v1.0/servicePrincipals"):
            deps.append(_latest(before, app_any))  # by appId
            if method == "POST":
                deps.append(_latest(before, lambda d: d["method"] == "GET" and
                                    d["path"].startswith("/v1.0/servicePrincipals")))
            else:
                deps.append(_repeat(c, before, lambda d: d["path"] == path))
            return _deps(*deps)
        return None
    # ARM
    if "/roleAssignments" in path:
        if method == "GET" and "principalId" not in query and "assignedTo" not in query:
            return _deps(*deps)  # all assignments at a scope: needs no principal
        deps.append(_latest(before, sp_any))
        if method != "GET":
            deps.append(_latest(before, lambda d: "/roleAssignments" in d["path"] and
                                d["method"] == "GET"))
            deps.append(_latest(before, lambda d: "/roleDefinitions/" in d["path"] and
                                d["method"] == "PUT"))
        return _deps(*deps)
    if "/roleDefinitions" in path:
        if method != "GET":
            deps.append(_latest(before, lambda d: "/roleDefinitions" in d["path"] and
                                d["method"] == "GET"))
            if method == "DELETE":
                deps.append(_latest(before, lambda d: "/roleAssignments" in d["path"] and
                                    d["method"] == "DELETE"))
        return _deps(*deps)
    if method == "GET":
        return _deps(*deps)
    return None


# ---- OUTSCALE (the OUTSCALE API: JSON POST /api/v1/<Action>) -------------------------------

def _osc_user(e):
    return _p(e, "UserName")


OSC_USER_WRITES = {"CreateUser", "LinkPolicy", "UnlinkPolicy", "CreateAccessKey",
                   "UpdateAccessKey", "DeleteAccessKey", "DeleteUser"}
OSC_POLICY_WRITES = {"CreatePolicy", "CreatePolicyVersion", "DeletePolicyVersion", "DeletePolicy"}
# the read whose answer decides whether a write is needed, by write
OSC_DECIDED_BY = {
    "CreateUser": ("ReadUsers",), "DeleteUser": ("ReadUsers",),
    "CreatePolicy": ("ReadPolicies",), "DeletePolicy": ("ReadPolicies",),
    "CreatePolicyVersion": ("ReadPolicyVersion",),
    "DeletePolicyVersion": ("ReadPolicyVersions",),
    "LinkPolicy": ("ReadLinkedPolicies",), "UnlinkPolicy": ("ReadLinkedPolicies",),
    "CreateAccessKey": ("ReadAccessKeys", "ReadApiAccessPolicy"),
    "UpdateAccessKey": ("ReadAccessKeys",), "DeleteAccessKey": ("ReadAccessKeys",),
}


def osc_rules(c, before):
    act = c.get("action")
    if act is None:
        return None
    if act in ("ReadAccounts", "ReadApiAccessPolicy"):
        return []
    deps = []
    who = _osc_user(c)
    orn = _p(c, "PolicyOrn")
    if act in ("ReadUsers", "ReadPolicies"):
        # whole lists (names come from the profile): a repeat confirms a creation
        made = ("CreateUser", "DeleteUser") if act == "ReadUsers" else \
            ("CreatePolicy", "DeletePolicy")
        deps.append(_latest(before, lambda d: d.get("action") in made))
        deps.append(_repeat(c, before, lambda d: d.get("action") == act))
        return _deps(*deps)
    if act in ("ReadLinkedPolicies", "ReadAccessKeys"):
        # only the user's name, from the profile; after a write to the user, that write
        deps.append(_latest(before, lambda d: _osc_user(d) == who and
                            d.get("action") in OSC_USER_WRITES))
        deps.append(_repeat(c, before, lambda d: d.get("action") == act and
                            _osc_user(d) == who))
        return _deps(*deps)
    if act in ("ReadPolicyVersion", "ReadPolicyVersions"):
        # the ORN and the default version come from the policy's read (or its creation)
        deps.append(_latest(before, lambda d: d.get("action") in ("ReadPolicies",
                                                                 "CreatePolicy")))
        deps.append(_latest(before, lambda d: d.get("action") in OSC_POLICY_WRITES and
                            _p(d, "PolicyOrn") == orn))
        return _deps(*deps)
    if act not in OSC_USER_WRITES | OSC_POLICY_WRITES:
        return None
    # every write: the account was checked to be the cluster's
    deps.append(_latest(before, lambda d: d.get("action") == "ReadAccounts"))
    for read in OSC_DECIDED_BY.get(act, ()):
        deps.append(_latest(before, lambda d: d.get("action") == read))
    if who is not None and act != "CreateUser":
        # the user must exist: its creation, or the read that confirmed it
        deps.append(_latest(before, lambda d: d.get("action") == "CreateUser" or (
            d.get("action") == "ReadUsers" and
            _latest(before, lambda x: x.get("action") == "CreateUser") is not None)))
    if act in ("LinkPolicy", "CreatePolicyVersion", "DeletePolicyVersion", "DeletePolicy"):
        # the policy must exist (its ORN comes from its creation or its read)
        deps.append(_latest(before, lambda d: d.get("action") == "CreatePolicy" or (
            d.get("action") == "ReadPolicies" and
            _latest(before, lambda x: x.get("action") == "CreatePolicy") is not None)))
    if act == "CreatePolicyVersion":
        deps.append(_latest(before, lambda d: d.get("action") == "DeletePolicyVersion"))
    if act == "DeleteAccessKey":
        # INACTIVE first, as the API requires; a replaced key goes after the new one exists
        deps.append(_latest(before, lambda d: d.get("action") == "UpdateAccessKey" and
                            _p(d, "AccessKeyId") == _p(c, "AccessKeyId")))
    if act in ("UpdateAccessKey", "DeleteAccessKey"):
        deps.append(_latest(before, lambda d: d.get("action") == "CreateAccessKey"))
    if act == "DeleteUser":
        deps.append(_latest(before, lambda d: d.get("action") in ("UnlinkPolicy",
                                                                 "DeleteAccessKey")))
    if act == "DeletePolicy":
        deps.append(_latest(before, lambda d: d.get("action") in ("UnlinkPolicy",
                                                                 "DeletePolicyVersion")))
    return _deps(*deps)


RULES = {"aws": aws_rules, "gcp": gcp_rules, "azure": azure_rules, "outscale": osc_rules}


def breakdown(run, t_start, t_end, delay_ms):
    """Where the wall time of a run went, along the observed critical chain, in ms: the
    delay the proxy added, the emulators' service time, the gaps between consecutive calls
    of the chain (`waits`: gaps of WAIT_MS or more, the agent's own timers: operation polls,
    confirmation pauses, retry backoff; `between_calls`: the shorter ones, the agent working
    and the Kubernetes API between two calls), and the time before the first cloud call
    (process start, kubeconfig, the cluster's identity, credentials) and after the last one
    (Secret, report, exit). The parts add up to the wall time."""
    chain = run.chain("_obs")
    out = {"delay": 0.0, "emulator": 0.0, "waits": 0.0, "between_calls": 0.0,
           "before_first_call": 0.0, "after_last_call": 0.0, "largest_gaps": []}
    if not chain:
        out["before_first_call"] = round((t_end - t_start) * 1000, 1)
        return out
    out["before_first_call"] = (chain[0]["t_first"] - t_start) * 1000
    gaps = []
    for i, c in enumerate(chain):
        out["delay"] += (c["t_fwd"] - c["t_recv"]) * 1000
        out["emulator"] += (c["t_done"] - c["t_fwd"]) * 1000
        out["between_calls"] += (c["t_recv"] - c["t_first"]) * 1000  # request upload
        if i > 0:
            g = (c["t_first"] - chain[i - 1]["t_done"]) * 1000
            out["waits" if g >= WAIT_MS else "between_calls"] += g
            gaps.append((round(g, 1), "%s -> %s" % (label(chain[i - 1]), label(c))))
    out["after_last_call"] = (t_end - chain[-1]["t_done"]) * 1000
    gaps.sort(reverse=True)
    out["largest_gaps"] = [{"ms": g, "between": w} for g, w in gaps[:4] if g >= WAIT_MS]
    for k in ("delay", "emulator", "waits", "between_calls", "before_first_call",
              "after_last_call"):
        out[k] = round(out[k], 1)
    return out


def _selftest():
    """python3 bench/depgraph.py: the rules on hand-made logs."""
    def call(t0, t1, action=None, path=None, method="POST", status=200, **params):
        t0, t1 = t0 / 1000.0, t1 / 1000.0  # milliseconds: calls follow each other closely
        e = {"seq": 0, "conn": 1, "method": method, "delayed": True, "status": status,
             "t_first": t0, "t_recv": t0, "t_fwd": t0, "t_done": t1, "path": path or "/"}
        if action:
            e["action"] = action
        if params:
            e["params"] = params
        return e
    arn = "arn:aws:iam::123456789012:policy/P"
    # a converged AWS rerun as the agent runs it: account, then everything, then the version
    log = [call(0, 1, "GetCallerIdentity"),
           call(2, 3, "GetUser", UserName="u"), call(2, 3, "ListAccessKeys", UserName="u"),
           call(2, 3, "GetPolicy", PolicyArn=arn),
           call(4, 5, "GetPolicyVersion", PolicyArn=arn, VersionId="v1")]
    r = Run(log, "aws-user")
    assert (r.dependency_path(), r.observed_path()) == (3, 3), (r.dependency_path(),
                                                                  r.observed_path())
    assert [label(c) for c in r.chain("_dep")] == ["GetCallerIdentity", "GetPolicy P",
                                                    "GetPolicyVersion P"]
    # the same reads issued one after the other: the schedule is longer than the dependencies
    log = [call(0, 1, "GetCallerIdentity"), call(2, 3, "GetUser", UserName="u"),
           call(4, 5, "ListAccessKeys", UserName="u"), call(6, 7, "GetPolicy", PolicyArn=arn)]
    r = Run(log, "aws-user")
    assert (r.dependency_path(), r.observed_path()) == (2, 4)
    assert [s["call"] for s in r.serialized()] == ["GetUser u", "ListAccessKeys u",
                                                    "GetPolicy P"], r.serialized()
    # a fresh user: create, two confirming reads, then the key
    log = [call(0, 1, "GetUser", status=404, UserName="u"),
           call(0, 1, "ListAccessKeys", status=404, UserName="u"),
           call(2, 3, "CreateUser", UserName="u"), call(4, 5, "GetUser", UserName="u"),
           call(6, 7, "GetUser", UserName="u"), call(8, 9, "CreateAccessKey", UserName="u")]
    r = Run(log, "aws-user")
    assert r.dependency_path() == 5 and not r.serialized(), (r.dependency_path(), r.serialized())
    # a fresh user as the agent now writes it (no confirming reads): create, then the key; a
    # write IAM answered NoSuchEntity and sent again depends on its first try
    log = [call(0, 1, "GetUser", status=404, UserName="u"),
           call(0, 1, "ListAccessKeys", status=404, UserName="u"),
           call(2, 3, "CreateUser", UserName="u"),
           call(4, 5, "CreateAccessKey", status=404, UserName="u"),
           call(9, 10, "CreateAccessKey", UserName="u")]
    r = Run(log, "aws-user")
    assert r.dependency_path() == 4 and not r.serialized(), (r.dependency_path(), r.serialized())
    # a read that starts on its own timer long after an unrelated call ended is not queued
    log = [call(0, 1, "GetCallerIdentity"), call(0, 1, "GetUser", UserName="u"),
           call(2, 3, "GetPolicy", PolicyArn=arn),
           call(200, 201, "GetUser", UserName="u")]
    r = Run(log, "aws-user")
    assert not r.serialized(), r.serialized()
    # an unknown call depends on everything before it
    log = [call(0, 1, "GetCallerIdentity"), call(2, 3, "DoSomethingNew")]
    r = Run(log, "aws-user")
    assert r.dependency_path() == 2 and r.unknown() == ["DoSomethingNew"]
    # OUTSCALE, a fresh user: lists, then the user's own reads, then create, confirm, link, key
    log = [call(0, 1, "ReadAccounts"), call(0, 1, "ReadUsers"), call(0, 1, "ReadPolicies"),
           call(0, 1, "ReadApiAccessPolicy"),
           call(2, 3, "ReadLinkedPolicies", UserName="u"),
           call(2, 3, "ReadAccessKeys", UserName="u"),
           call(4, 5, "CreateUser", UserName="u"), call(4, 5, "CreatePolicy", PolicyName="p"),
           call(6, 7, "ReadUsers"), call(8, 9, "ReadUsers"),
           call(10, 11, "LinkPolicy", UserName="u", PolicyOrn="orn"),
           call(10, 11, "CreateAccessKey", UserName="u")]
    r = Run(log, "outscale")
    assert (r.dependency_path(), r.observed_path()) == (5, 6), (r.dependency_path(),
                                                                  r.observed_path())
    # the user's reads need only its name; the creations need only the lists
    assert [s["call"] for s in r.serialized()] == ["ReadLinkedPolicies u", "ReadAccessKeys u",
                                                    "CreateUser u", "CreatePolicy p"]
    # Azure: the Graph token needs nothing, the app read needs it and the cluster's name
    tok = lambda t0, t1, res: dict(call(t0, t1, path="/t/oauth2/v2.0/token"),
                                   params={"scope": "https://%s/.default" % res})
    rg = "/subscriptions/s/resourceGroups/MC_x"
    log = [tok(0, 1, "management.azure.com"), call(2, 3, path=rg, method="GET"),
           tok(4, 5, "graph.microsoft.com"),
           call(6, 7, path="/v1.0/applications(uniqueName='u')", method="GET")]
    r = Run(log, "azure")
    assert (r.dependency_path(), r.observed_path()) == (3, 4)
    assert [s["call"] for s in r.serialized()] == ["token (graph)"], r.serialized()
    print("depgraph: self-test passed")


if __name__ == "__main__":
    _selftest()

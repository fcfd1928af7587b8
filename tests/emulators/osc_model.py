"""Request and response model of the OUTSCALE API calls cloudgrant makes (standard library only).

Used by osc_api.py (every request body is checked here before it is executed) and by
tests/e2e/test_osc_emulator.py (every answer of the emulator is checked against the response
shapes). Transcribed from Outscale's published API description (osc-api outscale.yaml, as
rendered by the generated SDK model pages: outscale/osc-sdk-rust docs/*.md, outscale_api
1.14-1.18 on docs.rs, osc-sdk-go v2/docs) and protocols.md 4.2. Parameter names, JSON types and
required parameters carry over; the code is ours.

Every request schema of outscale.yaml has additionalProperties: false, so an unknown parameter
is refused (400), as is a value of the wrong JSON type (a string where an integer belongs, a
bool for a string, an integer for a bool...). Integers must be JSON integers (true/false are
not integers).

Schema notation:
    "string" | "boolean" | "integer" | "object" (any object)
    ("array", "string")          a list of strings
    ("enum", ("A", "B"))         a string out of a fixed set (checked as a value: 400
                                 InvalidParameterValue, not a shape violation)
    ("struct", {name: schema})   an object with known fields (unknown field = violation)

DryRun: accepted by every action whose published request model lists it. The model pages of
CreatePolicyVersion, ReadPolicyVersion and ReadPolicyVersions do not list DryRun, so it is
refused there. DeletePolicyVersion, ReadPolicy and UnlinkPolicy: their pages were not found;
modelled like their family (PolicyOrn [+ VersionId], UnlinkPolicy with DryRun like LinkPolicy).
"""

__all__ = ["REQUESTS", "RESPONSES", "OBJECTS", "ACTIONS", "check_request", "check_response",
           "is_read_action"]

S, B, I = "string", "boolean", "integer"
STRINGS = ("array", "string")

# action -> (parameters, required)
REQUESTS = {
    "ReadAccounts": ({"DryRun": B}, ()),
    "ReadApiAccessPolicy": ({"DryRun": B}, ()),
    "CheckAuthentication": ({"DryRun": B, "Login": S, "Password": S}, ("Login", "Password")),
    "ReadVms": ({"DryRun": B, "Filters": "object", "NextPageToken": S, "ResultsPerPage": I}, ()),

    "CreateUser": ({"DryRun": B, "Path": S, "UserEmail": S, "UserName": S}, ("UserName",)),
    "ReadUsers": ({"DryRun": B, "Filters": ("struct", {"UserIds": STRINGS}), "FirstItem": I,
                   "ResultsPerPage": I}, ()),
    "UpdateUser": ({"DryRun": B, "NewPath": S, "NewUserEmail": S, "NewUserName": S,
                    "UserName": S}, ("UserName",)),
    "DeleteUser": ({"DryRun": B, "UserName": S}, ("UserName",)),

    "CreatePolicy": ({"Description": S, "Document": S, "DryRun": B, "Path": S,
                      "PolicyName": S}, ("Document", "PolicyName")),
    "ReadPolicies": ({"DryRun": B, "Filters": ("struct", {
        "OnlyLinked": B, "PathPrefix": S, "Scope": ("enum", ("LOCAL", "OWS"))}),
        "FirstItem": I, "ResultsPerPage": I}, ()),
    "ReadPolicy": ({"DryRun": B, "PolicyOrn": S}, ("PolicyOrn",)),
    "DeletePolicy": ({"DryRun": B, "PolicyOrn": S}, ("PolicyOrn",)),
    "CreatePolicyVersion": ({"Document": S, "PolicyOrn": S, "SetAsDefault": B},
                            ("Document", "PolicyOrn")),
    "ReadPolicyVersion": ({"PolicyOrn": S, "VersionId": S}, ("PolicyOrn", "VersionId")),
    "ReadPolicyVersions": ({"FirstItem": I, "PolicyOrn": S, "ResultsPerPage": I},
                           ("PolicyOrn",)),
    "DeletePolicyVersion": ({"PolicyOrn": S, "VersionId": S}, ("PolicyOrn", "VersionId")),

    "LinkPolicy": ({"DryRun": B, "PolicyOrn": S, "UserName": S}, ("PolicyOrn", "UserName")),
    "UnlinkPolicy": ({"DryRun": B, "PolicyOrn": S, "UserName": S}, ("PolicyOrn", "UserName")),
    "ReadLinkedPolicies": ({"DryRun": B, "Filters": ("struct", {"PathPrefix": S}),
                            "FirstItem": I, "ResultsPerPage": I, "UserName": S}, ()),

    "CreateAccessKey": ({"DryRun": B, "ExpirationDate": S, "Tag": S, "UserName": S}, ()),
    "ReadAccessKeys": ({"DryRun": B, "Filters": ("struct", {
        "AccessKeyIds": STRINGS, "States": STRINGS}), "Tag": S, "UserName": S}, ()),
    "UpdateAccessKey": ({"AccessKeyId": S, "DryRun": B, "ExpirationDate": S,
                         "State": ("enum", ("ACTIVE", "INACTIVE")), "UserName": S},
                        ("AccessKeyId", "State")),
    "DeleteAccessKey": ({"AccessKeyId": S, "DryRun": B, "UserName": S}, ("AccessKeyId",)),
}

ACTIONS = tuple(sorted(REQUESTS))

# Response objects (the fields Outscale's model lists; the emulator may leave optional ones out).
OBJECTS = {
    "ResponseContext": {"RequestId": S},
    "Account": {"AccountId": S, "AdditionalEmails": STRINGS, "City": S, "CompanyName": S,
                "Country": S, "CustomerId": S, "Email": S, "FirstName": S, "JobTitle": S,
                "LastName": S, "MobileNumber": S, "PhoneNumber": S, "StateProvince": S,
                "VatNumber": S, "ZipCode": S},
    "ApiAccessPolicy": {"MaxAccessKeyExpirationSeconds": I, "RequireTrustedEnv": B},
    "User": {"CreationDate": S, "LastModificationDate": S, "Path": S, "UserEmail": S,
             "UserId": S, "UserName": S},
    "Policy": {"CreationDate": S, "Description": S, "IsLinkable": B, "LastModificationDate": S,
               "Orn": S, "Path": S, "PolicyDefaultVersionId": S, "PolicyId": S,
               "PolicyName": S, "ResourcesCount": I},
    "PolicyVersion": {"Body": S, "CreationDate": S, "DefaultVersion": B, "VersionId": S},
    "LinkedPolicy": {"CreationDate": S, "LastModificationDate": S, "Orn": S, "PolicyId": S,
                     "PolicyName": S},
    "AccessKey": {"AccessKeyId": S, "CreationDate": S, "ExpirationDate": S,
                  "LastModificationDate": S, "State": S, "Tag": S},
    "AccessKeySecretKey": {"AccessKeyId": S, "CreationDate": S, "ExpirationDate": S,
                           "LastModificationDate": S, "SecretKey": S, "State": S, "Tag": S},
    "Vm": None,  # any object (the emulator returns none)
    "Error": {"Code": S, "Details": S, "Type": S},
}

PAGE = {"HasMoreItems": B, "MaxResultsLimit": I, "MaxResultsTruncated": B}

# action -> {field: object name | ("list", object name) | scalar type}
RESPONSES = {
    "ReadAccounts": {"Accounts": ("list", "Account")},
    "ReadApiAccessPolicy": {"ApiAccessPolicy": "ApiAccessPolicy"},
    "CheckAuthentication": {},
    "ReadVms": {"Vms": ("list", "Vm"), "NextPageToken": S},
    "CreateUser": {"User": "User"},
    "ReadUsers": dict(PAGE, Users=("list", "User")),
    "UpdateUser": {"User": "User"},
    "DeleteUser": {},
    "CreatePolicy": {"Policy": "Policy"},
    "ReadPolicies": dict(PAGE, Policies=("list", "Policy")),
    "ReadPolicy": {"Policy": "Policy"},
    "DeletePolicy": {},
    "CreatePolicyVersion": {"PolicyVersion": "PolicyVersion"},
    "ReadPolicyVersion": {"PolicyVersion": "PolicyVersion"},
    "ReadPolicyVersions": {"HasMoreItems": B, "MaxResultsLimit": I,
                           "PolicyVersions": ("list", "PolicyVersion")},
    "DeletePolicyVersion": {},
    "LinkPolicy": {},
    "UnlinkPolicy": {},
    "ReadLinkedPolicies": dict(PAGE, Policies=("list", "LinkedPolicy")),
    "CreateAccessKey": {"AccessKey": "AccessKeySecretKey"},
    "ReadAccessKeys": {"AccessKeys": ("list", "AccessKey")},
    "UpdateAccessKey": {"AccessKey": "AccessKey"},
    "DeleteAccessKey": {},
}


def is_read_action(action):
    """Reads never change state: Read* and Check*; everything else counts as mutating."""
    return action.startswith(("Read", "Check"))


def _type_name(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


def _check_value(path, schema, value, problems):
    if schema in (S, B, I):
        if _type_name(value) != schema:
            problems.append(("type", path, "parameter '%s' must be a %s, got %s"
                             % (path, schema, _type_name(value))))
        return
    if schema == "object":
        if not isinstance(value, dict):
            problems.append(("type", path, "parameter '%s' must be an object, got %s"
                             % (path, _type_name(value))))
        return
    kind = schema[0]
    if kind == "array":
        if not isinstance(value, list):
            problems.append(("type", path, "parameter '%s' must be an array of %ss, got %s"
                             % (path, schema[1], _type_name(value))))
            return
        for i, item in enumerate(value):
            _check_value("%s[%d]" % (path, i), schema[1], item, problems)
        return
    if kind == "enum":
        if not isinstance(value, str):
            problems.append(("type", path, "parameter '%s' must be a string, got %s"
                             % (path, _type_name(value))))
        elif value not in schema[1]:
            problems.append(("value", path, "parameter '%s' must be one of %s, got '%s'"
                             % (path, " | ".join(schema[1]), value)))
        return
    if kind == "struct":
        if not isinstance(value, dict):
            problems.append(("type", path, "parameter '%s' must be an object, got %s"
                             % (path, _type_name(value))))
            return
        for k, v in value.items():
            if k not in schema[1]:
                problems.append(("unknown", "%s.%s" % (path, k),
                                 "unknown parameter '%s.%s' (known: %s)"
                                 % (path, k, ", ".join(sorted(schema[1])))))
                continue
            _check_value("%s.%s" % (path, k), schema[1][k], v, problems)
        return
    raise ValueError("bad schema %r" % (schema,))


def check_request(action, body):
    """-> list of (kind, parameter, message); kind is "unknown" (parameter not in the model),
    "type" (wrong JSON type), "missing" (required parameter absent) or "value" (an enum value
    out of range). The first three are shape violations a correct client never sends."""
    params, required = REQUESTS[action]
    problems = []
    if not isinstance(body, dict):
        return [("type", "", "the request body must be a JSON object")]
    for k, v in body.items():
        if k not in params:
            problems.append(("unknown", k, "unknown parameter '%s' for %s (known: %s)"
                             % (k, action, ", ".join(sorted(params)))))
            continue
        _check_value(k, params[k], v, problems)
    for r in required:
        if r not in body:
            problems.append(("missing", r, "missing required parameter '%s' for %s"
                             % (r, action)))
    return problems


def _check_object(path, name, doc, problems):
    fields = OBJECTS[name]
    if not isinstance(doc, dict):
        problems.append("%s: %s is not an object" % (path, name))
        return
    if fields is None:
        return
    for k, v in doc.items():
        if k not in fields:
            problems.append("%s.%s: not a field of %s" % (path, k, name))
            continue
        sch = fields[k]
        if sch == STRINGS:
            if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                problems.append("%s.%s: not a list of strings" % (path, k))
        elif _type_name(v) != sch:
            problems.append("%s.%s: %s, not %s" % (path, k, _type_name(v), sch))


def check_response(action, doc, status=200):
    """-> list of problems with an answer of the emulator (empty when it has the published
    shape). Error answers (status >= 400) must be {"Errors": [Error...], "ResponseContext"}."""
    problems = []
    if not isinstance(doc, dict):
        return ["answer is not a JSON object"]
    rc = doc.get("ResponseContext")
    if not isinstance(rc, dict) or not isinstance(rc.get("RequestId"), str):
        problems.append("ResponseContext.RequestId missing")
    if status >= 400:
        errs = doc.get("Errors")
        if not isinstance(errs, list) or not errs:
            return problems + ["error answer without Errors"]
        for i, e in enumerate(errs):
            _check_object("Errors[%d]" % i, "Error", e, problems)
            if not str(e.get("Code", "")).isdigit():
                problems.append("Errors[%d].Code is not digits" % i)
        if set(doc) - {"Errors", "ResponseContext"}:
            problems.append("unexpected fields %s" % sorted(set(doc) - {"Errors",
                                                                        "ResponseContext"}))
        return problems
    fields = RESPONSES[action]
    for k, v in doc.items():
        if k == "ResponseContext":
            continue
        if k not in fields:
            problems.append("%s: not a field of %sResponse" % (k, action))
            continue
        sch = fields[k]
        if isinstance(sch, tuple) and sch[0] == "list":
            if not isinstance(v, list):
                problems.append("%s: not a list" % k)
                continue
            for i, item in enumerate(v):
                _check_object("%s[%d]" % (k, i), sch[1], item, problems)
        elif sch in OBJECTS:
            _check_object(k, sch, v, problems)
        elif _type_name(v) != sch:
            problems.append("%s: %s, not %s" % (k, _type_name(v), sch))
    return problems

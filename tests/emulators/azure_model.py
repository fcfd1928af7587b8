#!/usr/bin/python3
"""Request-shape models for azure_api.py (Microsoft Graph v1.0 and Azure Resource Manager).

Two halves:

Graph (standard library only, always available). There is no Graph SDK in Debian, so the
property sets of the Graph v1.0 types cloudgrant writes are transcribed here from the
resource pages on learn.microsoft.com (application, servicePrincipal, passwordCredential,
federatedIdentityCredential and the complex types they contain), with their EDM types
(Edm.String, Edm.Boolean, Edm.Guid, Collection(...), ...). check_graph(type, doc) walks a
request body and reports, like Graph's OData reader:
  - a property the type does not have ("Property 'x' does not exist on type
    'microsoft.graph.application'. ..."),
  - a value of the wrong EDM type, recursively through complex types and collections,
  - an @odata.type annotation that names another type.
Read-only properties are accepted and ignored, as Graph does.

ARM (needs Debian's python3-azure: azure-mgmt-authorization 3.0.0, api-version 2022-04-01).
ArmModels().check(kind, doc) checks a PUT body against the SDK's own model classes:
  kind "roleAssignment"  -> RoleAssignmentCreateParameters
  kind "roleDefinition"  -> RoleDefinition (with Permission items)
The walk follows the model's _attribute_map (flattened keys such as "properties.principalId",
nested models, "[str]" lists, "iso-8601" dates) and its _validation (required properties);
each unknown property, missing required property or wrong type is a violation; read-only
properties (scope, createdOn, ...) are warnings (ARM ignores them). As a second opinion the
body is deserialised with the SDK's Model.deserialize() and serialised back: a key lost on the
round trip is unknown to the SDK, a DeserializationError is a type error. principalType is also
checked against the SDK's PrincipalType enum.

Run as a program (under /usr/bin/python3) it serves JSON lines, for an emulator running under
another interpreter:
    -> {"ready": true, "sdk": "azure-mgmt-authorization 3.0.0", "api_version": "2022-04-01"}
    <- {"id": 1, "kind": "roleAssignment", "body": "<raw request body>"}
    -> {"id": 1, "violations": ["..."], "warnings": ["..."]}
"""
import base64
import binascii
import datetime
import json
import re
import sys

GUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                     r"[0-9a-fA-F]{12}$")

# ==============================================================================================
# Graph v1.0 property sets (learn.microsoft.com/graph/api/resources/<type>?view=graph-rest-1.0)
#
# Each type: property -> EDM type. "ro:" prefix = read-only (accepted, ignored on writes).

S, B, I32, G, DT, BIN = ("Edm.String", "Edm.Boolean", "Edm.Int32", "Edm.Guid",
                         "Edm.DateTimeOffset", "Edm.Binary")


def coll(t):
    return "Collection(%s)" % t


GRAPH_TYPES = {
    "microsoft.graph.application": {
        "id": "ro:" + S, "deletedDateTime": "ro:" + DT,
        "addIns": coll("microsoft.graph.addIn"),
        "api": "microsoft.graph.apiApplication",
        "appId": "ro:" + S, "applicationTemplateId": "ro:" + S,
        "appRoles": coll("microsoft.graph.appRole"),
        "certification": "ro:microsoft.graph.certification",
        "createdDateTime": "ro:" + DT, "defaultRedirectUri": S, "description": S,
        "disabledByMicrosoftStatus": S, "displayName": S, "groupMembershipClaims": S,
        "identifierUris": coll(S), "info": "microsoft.graph.informationalUrl",
        "isDeviceOnlyAuthSupported": B, "isFallbackPublicClient": B,
        "keyCredentials": coll("microsoft.graph.keyCredential"),
        "nativeAuthenticationApisEnabled": S, "notes": S, "oauth2RequirePostResponse": B,
        "optionalClaims": "microsoft.graph.optionalClaims",
        "parentalControlSettings": "microsoft.graph.parentalControlSettings",
        "passwordCredentials": coll("microsoft.graph.passwordCredential"),
        "publicClient": "microsoft.graph.publicClientApplication",
        "publisherDomain": "ro:" + S,
        "requestSignatureVerification": "microsoft.graph.requestSignatureVerification",
        "requiredResourceAccess": coll("microsoft.graph.requiredResourceAccess"),
        "samlMetadataUrl": S, "serviceManagementReference": S,
        "servicePrincipalLockConfiguration": "microsoft.graph.servicePrincipalLockConfiguration",
        "signInAudience": S, "spa": "microsoft.graph.spaApplication", "tags": coll(S),
        "tokenEncryptionKeyId": G, "uniqueName": S,
        "verifiedPublisher": "microsoft.graph.verifiedPublisher",
        "web": "microsoft.graph.webApplication",
    },
    "microsoft.graph.servicePrincipal": {
        "id": "ro:" + S, "deletedDateTime": "ro:" + DT, "accountEnabled": B,
        "addIns": coll("microsoft.graph.addIn"), "alternativeNames": coll(S),
        "appDescription": S, "appDisplayName": "ro:" + S, "appId": S,
        "applicationTemplateId": "ro:" + S, "appOwnerOrganizationId": "ro:" + G,
        "appRoleAssignmentRequired": B, "appRoles": coll("microsoft.graph.appRole"),
        "customSecurityAttributes": "microsoft.graph.customSecurityAttributeValue",
        "description": S, "disabledByMicrosoftStatus": S, "displayName": S, "homepage": S,
        "info": "microsoft.graph.informationalUrl",
        "keyCredentials": coll("microsoft.graph.keyCredential"), "loginUrl": S,
        "logoutUrl": S, "notes": S, "notificationEmailAddresses": coll(S),
        "oauth2PermissionScopes": coll("microsoft.graph.permissionScope"),
        "passwordCredentials": coll("microsoft.graph.passwordCredential"),
        "preferredSingleSignOnMode": S, "preferredTokenSigningKeyThumbprint": S,
        "replyUrls": coll(S),
        "resourceSpecificApplicationPermissions":
            "ro:" + coll("microsoft.graph.resourceSpecificPermission"),
        "samlSingleSignOnSettings": "microsoft.graph.samlSingleSignOnSettings",
        "servicePrincipalNames": coll(S), "servicePrincipalType": S,
        "signInAudience": "ro:" + S, "tags": coll(S), "tokenEncryptionKeyId": G,
        "verifiedPublisher": "microsoft.graph.verifiedPublisher",
    },
    "microsoft.graph.passwordCredential": {
        "customKeyIdentifier": BIN, "displayName": S, "endDateTime": DT, "hint": "ro:" + S,
        "keyId": G, "secretText": "ro:" + S, "startDateTime": DT,
    },
    "microsoft.graph.federatedIdentityCredential": {
        "audiences": coll(S), "description": S, "id": "ro:" + S, "issuer": S, "name": S,
        "subject": S,
    },
    "microsoft.graph.keyCredential": {
        "customKeyIdentifier": BIN, "displayName": S, "endDateTime": DT, "key": BIN,
        "keyId": G, "startDateTime": DT, "type": S, "usage": S,
    },
    "microsoft.graph.addIn": {"id": G, "properties": coll("microsoft.graph.keyValue"),
                              "type": S},
    "microsoft.graph.keyValue": {"key": S, "value": S},
    "microsoft.graph.apiApplication": {
        "acceptMappedClaims": B, "knownClientApplications": coll(G),
        "oauth2PermissionScopes": coll("microsoft.graph.permissionScope"),
        "preAuthorizedApplications": coll("microsoft.graph.preAuthorizedApplication"),
        "requestedAccessTokenVersion": I32,
    },
    "microsoft.graph.permissionScope": {
        "adminConsentDescription": S, "adminConsentDisplayName": S, "id": G, "isEnabled": B,
        "origin": S, "type": S, "userConsentDescription": S, "userConsentDisplayName": S,
        "value": S,
    },
    "microsoft.graph.preAuthorizedApplication": {"appId": S, "delegatedPermissionIds": coll(S)},
    "microsoft.graph.appRole": {
        "allowedMemberTypes": coll(S), "description": S, "displayName": S, "id": G,
        "isEnabled": B, "origin": "ro:" + S, "value": S,
    },
    "microsoft.graph.certification": {
        "certificationDetailsUrl": S, "certificationExpirationDateTime": DT,
        "isCertifiedByMicrosoft": B, "isPublisherAttested": B, "lastCertificationDateTime": DT,
    },
    "microsoft.graph.informationalUrl": {
        "logoUrl": "ro:" + S, "marketingUrl": S, "privacyStatementUrl": S, "supportUrl": S,
        "termsOfServiceUrl": S,
    },
    "microsoft.graph.optionalClaims": {
        "accessToken": coll("microsoft.graph.optionalClaim"),
        "idToken": coll("microsoft.graph.optionalClaim"),
        "saml2Token": coll("microsoft.graph.optionalClaim"),
    },
    "microsoft.graph.optionalClaim": {"additionalProperties": coll(S), "essential": B,
                                      "name": S, "source": S},
    "microsoft.graph.parentalControlSettings": {"countriesBlockedForMinors": coll(S),
                                                "legalAgeGroupRule": S},
    "microsoft.graph.publicClientApplication": {"redirectUris": coll(S)},
    "microsoft.graph.spaApplication": {"redirectUris": coll(S)},
    "microsoft.graph.requestSignatureVerification": {"allowedWeakAlgorithms": S,
                                                     "isSignedRequestRequired": B},
    "microsoft.graph.requiredResourceAccess": {
        "resourceAccess": coll("microsoft.graph.resourceAccess"), "resourceAppId": S},
    "microsoft.graph.resourceAccess": {"id": G, "type": S},
    "microsoft.graph.servicePrincipalLockConfiguration": {
        "allProperties": B, "credentialsWithUsageSign": B, "credentialsWithUsageVerify": B,
        "identifierUris": B, "isEnabled": B, "tokenEncryptionKeyId": B,
    },
    "microsoft.graph.verifiedPublisher": {"addedDateTime": DT, "displayName": S,
                                          "verifiedPublisherId": S},
    "microsoft.graph.webApplication": {
        "homePageUrl": S, "implicitGrantSettings": "microsoft.graph.implicitGrantSettings",
        "logoutUrl": S, "redirectUris": coll(S),
        "redirectUriSettings": coll("microsoft.graph.redirectUriSettings"),
    },
    "microsoft.graph.implicitGrantSettings": {"enableAccessTokenIssuance": B,
                                              "enableIdTokenIssuance": B},
    "microsoft.graph.redirectUriSettings": {"index": I32, "uri": S},
    "microsoft.graph.resourceSpecificPermission": {
        "description": S, "displayName": S, "id": G, "isEnabled": B, "value": S},
    "microsoft.graph.samlSingleSignOnSettings": {"relayState": S},
    # open type: any property is accepted
    "microsoft.graph.customSecurityAttributeValue": None,
    # action parameter sets (bodies of POST .../addPassword and .../removePassword)
    "action:addPassword": {"passwordCredential": "microsoft.graph.passwordCredential"},
    "action:removePassword": {"keyId": G},
}

# Enumerations the emulator checks (Graph answers "Invalid value specified for property").
GRAPH_ENUMS = {
    ("microsoft.graph.application", "signInAudience"): (
        "AzureADMyOrg", "AzureADMultipleOrgs", "AzureADandPersonalMicrosoftAccount",
        "PersonalMicrosoftAccount"),
}


def _short(type_name):
    """microsoft.graph.passwordCredential -> PasswordCredential (Graph's resource label)."""
    base = type_name.rsplit(".", 1)[-1].split(":")[-1]
    return base[:1].upper() + base[1:]


def _iso_ok(value):
    if not isinstance(value, str):
        return False
    v = value.strip()
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,7})?)?"
                        r"(Z|[+-]\d{2}:\d{2})?)?", v):
        return False
    v = re.sub(r"(\.\d{6})\d+", r"\1", v).replace("Z", "+00:00")
    try:
        datetime.datetime.fromisoformat(v)
    except ValueError:
        return False
    return True


class GraphViolation:
    """One refusal: (message, property path)."""

    def __init__(self, message, prop):
        self.message = message
        self.prop = prop

    def __repr__(self):
        return "GraphViolation(%r)" % self.message


def check_graph(type_name, doc, _path="", _out=None):
    """Walks doc (a parsed JSON body) as type_name; returns a list of GraphViolation."""
    out = [] if _out is None else _out
    props = GRAPH_TYPES.get(type_name)
    if props is None:  # open type
        return out
    label = type_name if not type_name.startswith("action:") else "microsoft.graph." + \
        type_name.split(":")[1] + "Parameters"
    if not isinstance(doc, dict):
        out.append(GraphViolation("A node of type '%s' was read from the JSON reader when "
                                  "trying to read a resource of type '%s'; however, a "
                                  "'StartObject' node was expected."
                                  % (_node_kind(doc), label), _path or "(body)"))
        return out
    for key, value in doc.items():
        where = (_path + "." if _path else "") + key
        if "@" in key:
            prop, _, annotation = key.partition("@")
            if prop == "" and annotation == "odata.type":
                if not isinstance(value, str) or value.lstrip("#").lower() != \
                        type_name.lower():
                    out.append(GraphViolation(
                        "A type named '%s' could not be resolved by the model. When a model "
                        "is available, each type name must resolve to a valid type."
                        % (value if isinstance(value, str) else json.dumps(value)), where))
                continue
            if annotation.startswith("odata."):
                out.append(GraphViolation("The annotation '%s' is not supported on this "
                                          "request." % key, where))
            continue  # instance annotations of other vocabularies are ignored
        t = props.get(key)
        if t is None:
            out.append(GraphViolation(
                "Property '%s' does not exist on type '%s'. Make sure to only use property "
                "names that are defined by the type or mark the type as open type."
                % (key, label), where))
            continue
        if t.startswith("ro:"):
            t = t[3:]
        _check_value(type_name, key, t, value, where, out)
        enum = GRAPH_ENUMS.get((type_name, key))
        if enum and value is not None and value not in enum:
            out.append(GraphViolation("Invalid value specified for property '%s' of resource "
                                      "'%s'." % (key, _short(type_name)), where))
    return out


def _node_kind(v):
    if isinstance(v, list):
        return "StartArray"
    if isinstance(v, dict):
        return "StartObject"
    return "PrimitiveValue"


def _check_value(owner, key, t, value, where, out):
    if value is None:
        if t.startswith("Collection("):
            out.append(GraphViolation("A null value was found for the property named '%s', "
                                      "which has the expected type '%s[Nullable=False]'. The "
                                      "expected type '%s[Nullable=False]' does not allow null "
                                      "values." % (key, t, t), where))
        return
    bad = lambda: out.append(GraphViolation(  # noqa: E731
        "Invalid value specified for property '%s' of resource '%s'." % (key, _short(owner)),
        where))
    if t.startswith("Collection("):
        inner = t[len("Collection("):-1]
        if not isinstance(value, list):
            out.append(GraphViolation("A node of type '%s' was read from the JSON reader when "
                                      "trying to read the contents of the property '%s'; "
                                      "however, a 'StartArray' node was expected."
                                      % (_node_kind(value), key), where))
            return
        for i, item in enumerate(value):
            if item is None:
                out.append(GraphViolation("A null value was found for the property named "
                                          "'%s', which has the expected type '%s"
                                          "[Nullable=False]'." % (key, inner), where))
                continue
            _check_value(owner, key, inner, item, "%s[%d]" % (where, i), out)
        return
    if t.startswith("microsoft.graph."):
        if not isinstance(value, dict):
            out.append(GraphViolation("A node of type '%s' was read from the JSON reader when "
                                      "trying to read the contents of the property '%s'; "
                                      "however, a 'StartObject' node was expected."
                                      % (_node_kind(value), key), where))
            return
        check_graph(t, value, where, out)
        return
    if t == S:
        if not isinstance(value, str):
            out.append(GraphViolation("Cannot convert a primitive value to the expected type "
                                      "'Edm.String'. See the inner exception for more "
                                      "details.", where))
    elif t == B:
        if not isinstance(value, bool):
            out.append(GraphViolation("Cannot convert the literal '%s' to the expected type "
                                      "'Edm.Boolean'." % _lit(value), where))
    elif t == I32:
        if isinstance(value, bool) or not isinstance(value, int) or \
                not -2 ** 31 <= value < 2 ** 31:
            out.append(GraphViolation("Cannot convert the literal '%s' to the expected type "
                                      "'Edm.Int32'." % _lit(value), where))
    elif t == G:
        if not isinstance(value, str) or not GUID_RE.match(value):
            out.append(GraphViolation("Cannot convert the literal '%s' to the expected type "
                                      "'Edm.Guid'." % _lit(value), where))
    elif t == DT:
        if not _iso_ok(value):
            out.append(GraphViolation("Cannot convert the literal '%s' to the expected type "
                                      "'Edm.DateTimeOffset'." % _lit(value), where))
    elif t == BIN:
        ok = isinstance(value, str)
        if ok:
            try:
                base64.b64decode(value + "=" * (-len(value) % 4), validate=True)
            except (binascii.Error, ValueError):
                ok = False
        if not ok:
            out.append(GraphViolation("Cannot convert the literal '%s' to the expected type "
                                      "'Edm.Binary'." % _lit(value), where))
    else:
        bad()


def _lit(v):
    return v if isinstance(v, str) else json.dumps(v)


def graph_properties(type_name):
    """The property names of a Graph type (for $select checks)."""
    return set(GRAPH_TYPES.get(type_name) or ())


# ==============================================================================================
# ARM, with the models of azure-mgmt-authorization (python3-azure)

ARM_API_VERSION = "2022-04-01"


class SdkMissing(RuntimeError):
    pass


class ArmModels:
    """Checks ARM PUT bodies against azure.mgmt.authorization.v2022_04_01.models."""
    KINDS = {"roleAssignment": "RoleAssignmentCreateParameters",
             "roleDefinition": "RoleDefinition"}
    # attribute -> enum class name in the same models module
    ENUM_ATTRS = {("RoleAssignmentCreateParameters", "principal_type"): "PrincipalType"}

    def __init__(self):
        try:
            from azure.mgmt.authorization.v2022_04_01 import models
            from azure.mgmt.authorization import _version as version
        except Exception as exc:  # ImportError and whatever a broken install raises
            raise SdkMissing("azure-mgmt-authorization (python3-azure) is not importable: "
                             "%s: %s" % (type(exc).__name__, exc)) from None
        self.models = models
        self.sdk = "azure-mgmt-authorization %s" % version.VERSION

    # -- the walk over _attribute_map ------------------------------------------------------------
    @staticmethod
    def _split_key(key):
        # msrest flattening: "properties.roleName"; a literal dot is escaped as "\\."
        parts = re.split(r"(?<!\\)\.", key)
        return [p.replace("\\.", ".") for p in parts]

    def _tree(self, cls):
        """{json key: node} where node is ("leaf", attr, type, flags) or ("obj", {...})."""
        tree = {}
        validation = getattr(cls, "_validation", {}) or {}
        for attr, spec in cls._attribute_map.items():
            if spec.get("key") == "" and spec.get("type") == "{object}":
                continue  # additional_properties catch-all
            parts = self._split_key(spec["key"])
            node = tree
            for p in parts[:-1]:
                node = node.setdefault(p, ("obj", {}))[1]
            node[parts[-1]] = ("leaf", attr, spec["type"], validation.get(attr, {}))
        return tree

    def _type_label(self, cls, path):
        base = cls.__name__
        if path and path[-1] == "properties":
            return base.replace("CreateParameters", "") + "Properties"
        return base

    def _walk(self, cls, tree, doc, path, out):
        if not isinstance(doc, dict):
            out["violations"].append(
                "Error converting value %s to type '%s'. Path '%s'."
                % (json.dumps(doc)[:60], self._type_label(cls, path), ".".join(path)))
            return
        for key, value in doc.items():
            sub = path + [key]
            node = tree.get(key)
            if node is None:
                out["violations"].append(
                    "Could not find member '%s' on object of type '%s'. Path '%s'."
                    % (key, self._type_label(cls, path), ".".join(sub)))
                continue
            if node[0] == "obj":
                if value is not None:
                    self._walk(cls, node[1], value, sub, out)
                continue
            _kind, attr, typ, flags = node
            if flags.get("readonly"):
                out["warnings"].append("read-only property '%s' is ignored" % ".".join(sub))
            self._value(cls, attr, typ, value, sub, out)
        # required properties
        for key, node in tree.items():
            if node[0] == "leaf" and node[3].get("required") and doc.get(key) is None:
                out["violations"].append("The required property '%s' is missing."
                                         % ".".join(path + [key]))
            if node[0] == "obj" and key not in doc:
                for k2, n2 in node[1].items():
                    if n2[0] == "leaf" and n2[3].get("required"):
                        out["violations"].append("The required property '%s' is missing."
                                                 % ".".join(path + [key, k2]))

    def _value(self, cls, attr, typ, value, path, out):
        where = ".".join(path)
        if value is None:
            return
        if typ.startswith("[") and typ.endswith("]"):
            if not isinstance(value, list):
                out["violations"].append("Error converting value %s to type '%s'. Path '%s'."
                                         % (json.dumps(value)[:60], typ, where))
                return
            for i, item in enumerate(value):
                self._value(cls, attr, typ[1:-1], item, path[:-1] + ["%s[%d]" % (path[-1], i)],
                            out)
            return
        if typ.startswith("{") and typ.endswith("}"):
            if not isinstance(value, dict):
                out["violations"].append("Error converting value %s to type '%s'. Path '%s'."
                                         % (json.dumps(value)[:60], typ, where))
                return
            for k, v in value.items():
                self._value(cls, attr, typ[1:-1], v, path + [k], out)
            return
        sub_cls = getattr(self.models, typ, None)
        if isinstance(sub_cls, type) and hasattr(sub_cls, "_attribute_map"):
            self._walk(sub_cls, self._tree(sub_cls), value, path, out)
            return
        ok = True
        if typ == "str":
            ok = isinstance(value, str)
        elif typ == "bool":
            ok = isinstance(value, bool)
        elif typ in ("int", "long"):
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif typ == "float":
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        elif typ in ("iso-8601", "rfc-1123", "date"):
            ok = _iso_ok(value) if typ != "rfc-1123" else isinstance(value, str)
        elif typ == "object":
            ok = True
        if not ok:
            out["violations"].append("Error converting value %s to type '%s'. Path '%s'."
                                     % (json.dumps(value)[:60], typ, where))
            return
        enum_name = self.ENUM_ATTRS.get((cls.__name__, attr))
        if enum_name and isinstance(value, str):
            enum = getattr(self.models, enum_name)
            if value.lower() not in {e.value.lower() for e in enum}:
                out["violations"].append("The value '%s' is not valid for '%s'; the %s "
                                         "values are %s." % (value, where, enum_name,
                                                             ", ".join(e.value for e in enum)))

    # -- the SDK's own deserialiser as a second opinion ---------------------------------------
    @staticmethod
    def _flat_keys(doc, prefix=""):
        keys = set()
        if isinstance(doc, dict):
            for k, v in doc.items():
                p = prefix + "." + k if prefix else k
                keys.add(p)
                keys |= ArmModels._flat_keys(v, p)
        elif isinstance(doc, list):
            for i, v in enumerate(doc):
                keys |= ArmModels._flat_keys(v, "%s[%d]" % (prefix, i))
        return keys

    def check(self, kind, doc):
        out = {"violations": [], "warnings": [], "model": None}
        name = self.KINDS.get(kind)
        if name is None:
            out["violations"].append("no model for %r" % kind)
            return out
        cls = getattr(self.models, name)
        out["model"] = "%s (%s, api-version %s)" % (name, self.sdk, ARM_API_VERSION)
        self._walk(cls, self._tree(cls), doc, [], out)
        if out["violations"] or not isinstance(doc, dict):
            return out
        try:
            model = cls.deserialize(doc)
            back = model.serialize(keep_readonly=True)
        except Exception as exc:  # DeserializationError, SerializationError, ValueError
            out["violations"].append("the SDK cannot deserialise the body as %s: %s"
                                     % (name, str(exc)[:300]))
            return out
        extra = getattr(model, "additional_properties", None) or {}
        lost = {k for k in self._flat_keys(doc) - self._flat_keys(back)
                if not self._nulls_only(doc, k)}
        lost -= set(extra)  # top-level keys the walk already reported
        for k in sorted(lost):
            top = k.split(".")[0].split("[")[0]
            if top in extra:
                continue
            out["violations"].append("the SDK model %s drops '%s' (unknown to it)" % (name, k))
        return out

    @staticmethod
    def _nulls_only(doc, flat_key):
        node = doc
        for part in re.split(r"\.", flat_key):
            m = re.fullmatch(r"(.*?)((?:\[\d+\])*)", part)
            node = node.get(m.group(1)) if isinstance(node, dict) else None
            for idx in re.findall(r"\[(\d+)\]", m.group(2)):
                node = node[int(idx)] if isinstance(node, list) and int(idx) < len(node) \
                    else None
            if node is None:
                return True
        return node in ([], {})


def check_arm_text(models, kind, body_text):
    """check() for a raw body (used by the JSON-lines server and the emulator)."""
    try:
        doc = json.loads(body_text) if body_text not in (None, "") else None
    except ValueError as exc:
        return {"violations": ["body is not JSON: %s" % exc], "warnings": []}
    if doc is None:
        return {"violations": ["the request has no body"], "warnings": []}
    return models.check(kind, doc)


def main():
    try:
        models = ArmModels()
    except SdkMissing as exc:
        print(json.dumps({"ready": False, "error": str(exc)}), flush=True)
        return 2
    print(json.dumps({"ready": True, "sdk": models.sdk, "api_version": ARM_API_VERSION}),
          flush=True)
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            req = json.loads(line)
            out = check_arm_text(models, req.get("kind"), req.get("body"))
            out["id"] = req.get("id")
        except Exception as exc:  # never die on one bad request
            out = {"id": None, "violations": ["validator error: %s: %s"
                                              % (type(exc).__name__, exc)], "warnings": []}
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())

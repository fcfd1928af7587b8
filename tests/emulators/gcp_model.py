"""Request validator for gcp_api.py, run under gcloud's bundled Python.

    G=/usr/lib/google-cloud-sdk
    PYTHONPATH=$G/lib:$G/lib/third_party $G/platform/bundledpythonunix/bin/python3 gcp_model.py

gcloud ships the generated apitools clients of the Google APIs it calls
(googlecloudsdk/generated_clients/apis/<api>/v1/<api>_v1_client.py and _messages.py). They
are the closest thing to the real API definitions available offline: every method's HTTP
verb, path template, query parameters and request message. This program loads the three
APIs cloudgrant uses (iam, serviceusage, cloudresourcemanager) and checks requests against
them, so the emulator refuses what Google's front end would refuse.

Protocol: JSON lines. On start it prints {"ready": true, "methods": N} (or {"ready": false,
"error": ...}). Then for each input line
    {"id": 7, "api": "iam", "method": "POST", "path": "v1/projects/p/serviceAccounts",
     "query": {"alt": ["json"]}, "body": "<raw request body text or null>"}
it prints one line
    {"id": 7, "known": true, "method_id": "iam.projects.serviceAccounts.create",
     "violations": ["..."], "field_violations": [{"field": "...", "description": "..."}]}
known=false means no method of that API has this verb and path (Google answers 404).

Checks, each failure one violation:
- path and verb: a method whose flat_path (or relative_path) template matches;
- query parameters: each one is a standard parameter (alt, fields, prettyPrint, ...) or one
  of the method's query_params (JSON names, e.g. options.requestedPolicyVersion), of the
  right type (integer, boolean, enum value), repeated only if the field is repeated;
- body: none for methods without a request body; otherwise valid JSON whose every key is a
  field of the request message (lowerCamelCase JSON names or the proto snake_case names, as
  Google's JSON parser accepts both), recursively, with values of the field's type (string,
  integer or integer string, boolean, enum name, base64 bytes, object, list for repeated).
  As a second opinion, apitools' own JsonToMessage is run and all_unrecognized_fields() is
  collected recursively; anything it reports that the walk did not is a violation too.
Messages imitate Google's ("Invalid JSON payload received. Unknown name \"acountId\":
Cannot find field.").
"""
import base64
import binascii
import importlib
import json
import re
import sys

APIS = {
    # our path prefix -> generated client package name
    "iam": "iam",
    "serviceusage": "serviceusage",
    "cloudresourcemanager": "cloudresourcemanager",
}

try:
    from apitools.base.protorpclite import messages as pmsg
    from apitools.base.py import base_api, encoding, extra_types
    from apitools.base.py import encoding_helper
except Exception as exc:  # pragma: no cover - reported through the ready line
    print(json.dumps({"ready": False, "error": "apitools not importable: %s" % exc}),
          flush=True)
    sys.exit(2)

STANDARD_PARAMS = {
    "$.xgafv": ("enum", ["1", "2"]), "access_token": ("string", None),
    "alt": ("enum", ["json", "media", "proto"]), "callback": ("string", None),
    "fields": ("string", None), "key": ("string", None), "oauth_token": ("string", None),
    "prettyPrint": ("bool", None), "quotaUser": ("string", None), "trace": ("string", None),
    "uploadType": ("string", None), "upload_protocol": ("string", None),
}


def snake(name):
    return re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), name)


def camel(name):
    return re.sub(r"_([a-z0-9])", lambda m: m.group(1).upper(), name)


class Method:
    def __init__(self, api, info, messages):
        self.api = api
        self.info = info
        self.messages = messages
        self.method_id = info.method_id
        self.http_method = info.http_method.upper()
        template = info.flat_path or info.relative_path
        self.template = template
        self.regex, self.literal_len = self._compile(template)
        self.request_type = getattr(messages, info.request_type_name)
        self.request_field = info.request_field or ""
        self.query_params = list(info.query_params or [])

    @staticmethod
    def _compile(template):
        out, literal, pos = [], 0, 0
        for m in re.finditer(r"\{(\+?)([^}]+)\}", template):
            lit = template[pos:m.start()]
            out.append(re.escape(lit))
            literal += len(lit)
            # {+name} spans segments (reserved expansion); {x} is one segment, and never
            # swallows a ":verb" suffix.
            out.append("(.+?)" if m.group(1) else "([^/:]+)")
            pos = m.end()
        lit = template[pos:]
        out.append(re.escape(lit))
        literal += len(lit)
        return re.compile("^" + "".join(out) + "$"), literal

    def body_type(self):
        if not self.request_field:
            return None
        if self.request_field == "<request>":
            return self.request_type
        field = self.request_type.field_by_name(self.request_field)
        return field.message_type


class Model:
    def __init__(self):
        self.methods = {}
        for prefix, pkg in APIS.items():
            base = "googlecloudsdk.generated_clients.apis.%s.v1" % pkg
            client_mod = importlib.import_module("%s.%s_v1_client" % (base, pkg))
            messages = importlib.import_module("%s.%s_v1_messages" % (base, pkg))
            client_cls = None
            for obj in vars(client_mod).values():
                if isinstance(obj, type) and issubclass(obj, base_api.BaseApiClient) \
                        and obj is not base_api.BaseApiClient:
                    client_cls = obj
            found = []
            for attr in vars(client_cls).values():
                if not (isinstance(attr, type) and issubclass(attr, base_api.BaseApiService)):
                    continue
                for name in dir(attr):
                    fn = getattr(attr, name, None)
                    cfg = getattr(fn, "method_config", None)
                    if callable(cfg):
                        found.append(Method(prefix, cfg(), messages))
            self.methods[prefix] = found

    def count(self):
        return sum(len(v) for v in self.methods.values())

    def match(self, api, verb, path):
        best = None
        for m in self.methods.get(api, ()):
            if m.http_method != verb:
                continue
            if m.regex.match(path) and (best is None or m.literal_len > best.literal_len):
                best = m
        return best


# -- field lookup and type checks ------------------------------------------------------------

def json_fields(msg_cls):
    """JSON name -> field, plus proto snake_case aliases (Google's parser takes both)."""
    out = {}
    for f in msg_cls.all_fields():
        jname = encoding.GetCustomJsonFieldMapping(msg_cls, python_name=f.name) or f.name
        out[jname] = f
        out.setdefault(snake(jname), f)
    return out


def map_value_field(msg_cls):
    """The value field of a map message (additionalProperties), or None."""
    name = encoding_helper._UNRECOGNIZED_FIELD_MAPPINGS.get(msg_cls)
    if not name:
        return None
    entry = msg_cls.field_by_name(name).message_type
    return entry.field_by_name("value")


def type_name(field):
    if isinstance(field, pmsg.EnumField):
        return "type.googleapis.com/%s" % field.type.__name__
    if isinstance(field, pmsg.MessageField):
        return "type.googleapis.com/%s" % field.message_type.__name__
    variant = getattr(field, "variant", None)
    return "TYPE_%s" % (variant.name if variant is not None else "STRING")


def render(value):
    return json.dumps(value) if not isinstance(value, str) else json.dumps(value)


class Walker:
    def __init__(self):
        self.violations = []
        self.field_violations = []

    def add(self, field_path, description):
        self.violations.append(description)
        fv = {"description": description}
        if field_path:
            fv["field"] = field_path
        self.field_violations.append(fv)

    def unknown(self, path, key):
        where = (" at '%s'" % path) if path else ""
        self.add(None, "Invalid JSON payload received. Unknown name \"%s\"%s: "
                 "Cannot find field." % (key, where))

    def bad_value(self, path, field, value):
        self.add(path, "Invalid value at '%s' (%s), %s" % (path, type_name(field),
                                                            render(value)))

    def message(self, msg_cls, value, path):
        if value is None:
            return
        if msg_cls in (extra_types.JsonValue, extra_types.JsonObject, extra_types.JsonArray):
            return
        if not isinstance(value, dict):
            self.add(path or "", "Invalid JSON payload received. Expected an object%s, got %s."
                     % ((" at '%s'" % path) if path else "", render(value)[:80]))
            return
        mvf = map_value_field(msg_cls)
        if mvf is not None:
            for k, v in value.items():
                self.value(mvf, v, "%s[%s]" % (path, json.dumps(k)) if path else k)
            return
        fields = json_fields(msg_cls)
        for key, v in value.items():
            f = fields.get(key)
            if f is None:
                self.unknown(path, key)
                continue
            sub = (path + "." if path else "") + snake(key)
            if f.repeated:
                if v is None:
                    continue
                if not isinstance(v, list):
                    self.bad_value(sub, f, v)
                    continue
                for i, item in enumerate(v):
                    self.value(f, item, "%s[%d]" % (sub, i))
            else:
                if isinstance(v, list):
                    self.add(sub, "Invalid JSON payload received. Proto field is not repeating,"
                             " cannot start list at '%s'." % sub)
                    continue
                self.value(f, v, sub)

    def value(self, f, v, path):
        if v is None:
            return
        if isinstance(f, pmsg.MessageField):
            self.message(f.message_type, v, path)
        elif isinstance(f, pmsg.EnumField):
            names = set(f.type.names())
            mapped = set()
            for n in names:
                j = encoding.GetCustomJsonEnumMapping(f.type, python_name=n)
                mapped.add(j or n)
            if isinstance(v, bool) or not (
                    (isinstance(v, str) and v in mapped) or
                    (isinstance(v, int) and v in {int(e) for e in f.type})):
                self.bad_value(path, f, v)
        elif isinstance(f, pmsg.BooleanField):
            if not isinstance(v, bool):
                self.bad_value(path, f, v)
        elif isinstance(f, pmsg.IntegerField):
            if isinstance(v, bool):
                self.bad_value(path, f, v)
            elif isinstance(v, int):
                pass
            elif isinstance(v, str) and re.fullmatch(r"-?\d+", v):
                pass
            else:
                self.bad_value(path, f, v)
        elif isinstance(f, pmsg.FloatField):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                self.bad_value(path, f, v)
        elif isinstance(f, pmsg.BytesField):
            if not isinstance(v, str):
                self.bad_value(path, f, v)
            else:
                s = v.replace("-", "+").replace("_", "/")
                s += "=" * (-len(s) % 4)
                try:
                    base64.b64decode(s, validate=True)
                except (binascii.Error, ValueError):
                    self.bad_value(path, f, v)
        elif isinstance(f, pmsg.StringField):
            if not isinstance(v, str):
                self.bad_value(path, f, v)


def unrecognized(msg, path=""):
    """all_unrecognized_fields(), recursively, as dotted paths."""
    out = []
    if msg is None:
        return out
    known = {f.name for f in msg.all_fields()}
    for name in msg.all_unrecognized_fields():
        if camel(name) in known and camel(name) != name:
            continue  # a proto snake_case alias apitools does not know; Google accepts it
        out.append((path + "." if path else "") + name)
    for f in msg.all_fields():
        if not isinstance(f, pmsg.MessageField):
            continue
        if f.message_type in (extra_types.JsonValue, extra_types.JsonObject,
                              extra_types.JsonArray):
            continue
        val = msg.get_assigned_value(f.name)
        if val is None:
            continue
        items = val if f.repeated else [val]
        for i, item in enumerate(items):
            if isinstance(item, pmsg.Message):
                sub = (path + "." if path else "") + f.name + ("[%d]" % i if f.repeated else "")
                out.extend(unrecognized(item, sub))
    return out


def check_query(method, query, w):
    allowed = {}
    for pname in method.query_params:
        jname = encoding.GetCustomJsonFieldMapping(method.request_type, python_name=pname) \
            or pname
        allowed[jname] = method.request_type.field_by_name(pname)
    for key, values in (query or {}).items():
        if key in STANDARD_PARAMS:
            kind, choices = STANDARD_PARAMS[key]
            for v in values:
                if kind == "bool" and v not in ("true", "false"):
                    w.add(key, "Invalid value at '%s' (TYPE_BOOL), \"%s\"" % (key, v))
                if kind == "enum" and v not in choices:
                    w.add(key, "Invalid value at '%s', \"%s\"" % (key, v))
            continue
        f = allowed.get(key)
        if f is None:
            w.add(key, "Invalid JSON payload received. Unknown name \"%s\": Cannot bind query "
                  "parameter. Field '%s' could not be found in request message." % (key, key))
            continue
        if len(values) > 1 and not f.repeated:
            w.add(key, "Invalid JSON payload received. Multiple values given for the "
                  "non-repeated query parameter '%s'." % key)
        for v in values:
            if isinstance(f, pmsg.IntegerField):
                if not re.fullmatch(r"-?\d+", v):
                    w.add(key, "Invalid value at '%s' (%s), \"%s\"" % (key, type_name(f), v))
            elif isinstance(f, pmsg.BooleanField):
                if v not in ("true", "false", "1", "0"):
                    w.add(key, "Invalid value at '%s' (TYPE_BOOL), \"%s\"" % (key, v))
            elif isinstance(f, pmsg.EnumField):
                if v not in set(f.type.names()):
                    w.add(key, "Invalid value at '%s' (%s), \"%s\"" % (key, type_name(f), v))


def check(model, req):
    api, verb, path = req.get("api"), (req.get("method") or "").upper(), req.get("path") or ""
    method = model.match(api, verb, path)
    if method is None:
        return {"known": False, "method_id": None,
                "violations": ["no %s method with %s %s in gcloud's generated client"
                               % (api, verb, path)], "field_violations": []}
    w = Walker()
    check_query(method, req.get("query"), w)
    body = req.get("body")
    btype = method.body_type()
    if btype is None:
        if body not in (None, "") and body.strip() not in ("", "{}"):
            w.add("", "Invalid JSON payload received. %s takes no request body."
                  % method.method_id)
    elif body not in (None, ""):
        try:
            doc = json.loads(body)
        except ValueError as exc:
            w.add("", "Invalid JSON payload received. %s" % exc)
        else:
            w.message(btype, doc, "")
            if not w.violations and isinstance(doc, dict):
                try:
                    msg = encoding.JsonToMessage(btype, body)
                except Exception as exc:  # apitools is stricter on some values
                    w.add("", "Invalid JSON payload received (apitools): %s" % exc)
                else:
                    for name in unrecognized(msg):
                        w.add(name, "Invalid JSON payload received. Unknown name \"%s\": "
                              "Cannot find field." % name)
    return {"known": True, "method_id": method.method_id, "violations": w.violations,
            "field_violations": w.field_violations, "request_field": method.request_field}


def main():
    try:
        model = Model()
    except Exception as exc:
        print(json.dumps({"ready": False, "error": "%s: %s" % (type(exc).__name__, exc)}),
              flush=True)
        return 2
    print(json.dumps({"ready": True, "methods": model.count()}), flush=True)
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            req = json.loads(line)
            out = check(model, req)
            out["id"] = req.get("id")
        except Exception as exc:  # never die on one bad request
            out = {"id": None, "known": True, "method_id": None,
                   "violations": ["validator error: %s: %s" % (type(exc).__name__, exc)],
                   "field_violations": []}
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())

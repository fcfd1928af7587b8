"""The secret scan shared by the end-to-end suites.

A suite records every secret value that the emulators issued or that the test configured
(`issued`), and everything a run left behind (`take_*`): what the agent printed, the reports
the central endpoint received, the files under the run's directory, the Kubernetes objects and
the emulators' logs. `check()` then looks for each secret, as written and base64-encoded (a
Secret's data, a basic-auth header), in all of it.

Two places may hold a secret by design and are left out, each narrowly: the `credentials`
field of a report (the field meant for it; a sealed one is ciphertext and is scanned), and the
data of the credential Secret itself. Files the test wrote on purpose (a credentials-out
target, a token file it configured) are named by the suite when it takes the tree."""
import base64
import json
import os


class SecretScan:
    def __init__(self):
        self.issued = set()
        self.texts = []  # (where, text)

    def add(self, *values):
        for v in values:
            if v:
                self.issued.add(v)

    def take_output(self, where, text):
        self.texts.append((where, text or ""))

    def take_reports(self, bodies, where="report"):
        for i, body in enumerate(bodies):
            body = dict(body)
            if isinstance(body.get("credentials"), dict):  # plain; a sealed one is a JWE string
                body.pop("credentials")
            self.texts.append(("%s %d (%s)" % (where, i, body.get("kind", "?")),
                               json.dumps(body)))

    def take_tree(self, root, skip=()):
        """Every file under root, but the paths in skip (and anything under them)."""
        skip = [os.path.realpath(s) for s in skip]
        for dirpath, _, files in os.walk(root):
            for name in files:
                path = os.path.join(dirpath, name)
                real = os.path.realpath(path)
                if any(real == s or real.startswith(s + os.sep) for s in skip):
                    continue
                try:
                    with open(path, "rb") as f:
                        self.texts.append(("file " + path, f.read().decode("utf-8", "replace")))
                except OSError:
                    pass

    def take_file(self, where, path):
        try:
            with open(path, "rb") as f:
                self.texts.append((where, f.read().decode("utf-8", "replace")))
        except OSError:
            pass

    def take_logs(self, **emulators):
        """Each emulator's own log (harness objects with a .log() method)."""
        for name, emu in emulators.items():
            self.texts.append(("log " + name, emu.log()))

    def take_k8s(self, api, credential_secrets=(), namespaces=None):
        """Every Secret and Lease the emulator holds (all the agent can write there). The data
        of the named credential Secrets is left out; their names, labels and annotations are
        scanned."""
        p = api.kubectl("get", "secrets,leases", "-A", "-o", "json")
        if p.returncode != 0:
            raise RuntimeError("secret scan: kubectl get failed: " + p.stderr[-500:])
        for item in json.loads(p.stdout).get("items", []):
            meta = item.get("metadata", {})
            if item.get("kind") == "Secret" and meta.get("name") in credential_secrets:
                item = dict(item)
                item.pop("data", None)
                item.pop("stringData", None)
            self.texts.append(("%s %s/%s" % (item.get("kind"), meta.get("namespace"),
                                             meta.get("name")), json.dumps(item)))

    def needles(self):
        out = {}
        for s in self.issued:
            if len(s) < 8:  # too short to mean anything when found
                continue
            out[s] = s
            out[base64.b64encode(s.encode()).decode().rstrip("=")] = s
            # a PEM's body lines too: inside JSON its newlines are escaped
            for line in s.splitlines():
                if len(line) > 40:
                    out[line] = s
        return out

    def hits(self):
        """"where: secret prefix..." for each secret found, quietly."""
        return [h[:h.rindex(": ") + 6] + "..." for h in _hits(self)]

    def check(self):
        """Prints the counts; returns a list of "where: secret prefix" for each hit."""
        _self_test()
        hits = self.hits()
        kinds = {}
        for where, _ in self.texts:
            k = where.split(" ", 1)[0]
            kinds[k] = kinds.get(k, 0) + 1
        print("  %d secret values scanned (as written and base64) across %d texts: %s"
              % (len(self.issued), len(self.texts),
                 ", ".join("%d %s" % (v, k) for k, v in sorted(kinds.items()))))
        return hits



def _self_test():
    """The scan must find a planted secret in each form it claims to cover."""
    planted = "planted-secret-0123456789"
    t = SecretScan()
    t.add(planted, "short")
    t.take_output("output", "x" + planted)
    t.take_reports([{"kind": "OnboardingReport", "credentials": {"k": planted}},
                    {"kind": "OnboardingReport", "error": planted},
                    {"kind": "OnboardingReport", "credentials": "jwe." + planted}])
    t.texts.append(("Secret default/x", base64.b64encode(planted.encode()).decode()))
    hits = [h.split(":")[0] for h in _hits(t)]
    want = ["output", "report 1 (OnboardingReport)", "report 2 (OnboardingReport)",
            "Secret default/x"]
    assert hits == want, "secret scan self-test: %s" % hits


def _hits(scan):
    needles = scan.needles()
    return ["%s: %s" % (w, s) for w, text in scan.texts for n, s in needles.items() if n in text]

/* lease: one run at a time per credential, through a Kubernetes Lease (coordination.k8s.io/v1)
 * named like the credential Secret, in its namespace.
 *
 * Two runs onboarding the same profile at once (a Job retried while the first still runs, a
 * CronJob's check --fix overlapping an onboard) would each see "no key" and each make one:
 * a second identity key that nobody receives. The Lease makes the second run wait until the
 * first is done, then see the converged account and change nothing.
 *
 * The holder renews the Lease every third of its duration while the loop runs; a holder that
 * died stops renewing, and the Lease is taken over once it has expired. Every write carries
 * the resourceVersion read, so two runs can never both take it. */
#ifndef CG_LEASE_H
#define CG_LEASE_H

#include "cg_err.h"

struct k8s_client;
struct lease;

/* Takes Lease ns/name for this process (holder "<hostname>/<pid>/<random>"), lasting
 * duration_s without renewal, waiting up to wait_s for another holder to release it or let it
 * expire. Runs the loop until done. 0 with *out (release it with lease_release); CG_ETIMEDOUT
 * when another run still holds it after wait_s ("another cloudgrant run (<holder>) holds Lease
 * ns/name ..."), CG_EAUTH when the service account may not use Leases (the message says which
 * verbs it needs), other codes for the API's failures. */
int lease_acquire(struct lease **out, struct k8s_client *k8s, const char *ns, const char *name,
                  long duration_s, long wait_s, struct cg_err *err);

/* Stops renewing and gives the Lease up (holder cleared, so the next run need not wait for it
 * to expire), running the loop until that is sent; frees l. NULL-safe. A failure is only
 * logged: the Lease then expires by itself. */
void lease_release(struct lease *l);

#endif

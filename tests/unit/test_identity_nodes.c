/* Unit tests for k8s_identity_from_nodes: provider, region, account and name from nodes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "k8s_identity.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static json_t *node(const char *provider_id, const char *labels_json)
{
    json_t *labels = json_loads(labels_json, 0, NULL);
    assert_non_null(labels);
    json_t *n =
        json_pack("{s:{s:s, s:o}, s:{}}", "metadata", "name", "n", "labels", labels, "spec");
    assert_non_null(n);
    if (provider_id != NULL) {
        json_object_set_new(json_object_get(n, "spec"), "providerID", json_string(provider_id));
    }
    return n;
}

static void run(struct k8s_identity *id, json_t *items)
{
    memset(id, 0, sizeof(*id));
    assert_int_equal(k8s_identity_from_nodes(id, items), 0);
    json_decref(items);
}

#define assert_str_or_null(a, b)                                                                   \
    do {                                                                                           \
        if ((b) == NULL) {                                                                         \
            assert_null(a);                                                                        \
        } else {                                                                                   \
            assert_non_null(a);                                                                    \
            assert_string_equal((a), (b));                                                         \
        }                                                                                          \
    } while (0)

static void expect(const struct k8s_identity *id, const char *provider, const char *region,
                   const char *account, const char *name)
{
    assert_str_or_null(id->provider, provider);
    assert_str_or_null(id->region, region);
    assert_str_or_null(id->account, account);
    assert_str_or_null(id->name, name);
}

static void test_eks(void **state)
{
    (void)state;
    struct k8s_identity id;
    json_t *items = json_array();
    json_array_append_new(
        items, node("aws:///eu-west-3a/i-0abc",
                    "{\"topology.kubernetes.io/region\":\"eu-west-3\",\"node.kubernetes.io/"
                    "instance-type\":\"m5.large\",\"alpha.eksctl.io/cluster-name\":\"prod\"}"));
    json_array_append_new(items,
                          node("aws:///eu-west-3b/i-0def",
                               "{\"topology.kubernetes.io/region\":\"eu-west-3\",\"alpha.eksctl.io/"
                               "cluster-name\":\"prod\"}"));
    run(&id, items);
    expect(&id, "aws", "eu-west-3", NULL, "prod"); /* the account is not on a node */
    assert_int_equal(id.nodes_seen, 2);
    k8s_identity_cleanup(&id);
}

static void test_eks_region_from_az_without_label(void **state)
{
    (void)state;
    struct k8s_identity id;
    json_t *items = json_array();
    json_array_append_new(items, node("aws:///us-gov-west-1a/i-1", "{}"));
    run(&id, items);
    expect(&id, "aws", "us-gov-west-1", NULL, NULL);
    k8s_identity_cleanup(&id);
    /* A Local Zone does not follow the "<region><letter>" rule: no guess. */
    items = json_array();
    json_array_append_new(items, node("aws:///us-west-2-lax-1a/i-1", "{}"));
    run(&id, items);
    expect(&id, "aws", NULL, NULL, NULL);
    k8s_identity_cleanup(&id);
}

static void test_outscale_told_apart_from_aws(void **state)
{
    (void)state;
    struct k8s_identity id;
    json_t *items = json_array();
    json_array_append_new(items, node("aws:///eu-west-2a/i-3c2b1a0f",
                                      "{\"node.kubernetes.io/instance-type\":\"tinav6.c4r8p2\"}"));
    run(&id, items);
    expect(&id, "outscale", "eu-west-2", NULL, NULL);
    k8s_identity_cleanup(&id);
    items = json_array();
    json_array_append_new(items,
                          node("aws:///cloudgouv-eu-west-1a/i-1",
                               "{\"topology.outscale.com/net\":\"vpc-1\",\"topology.kubernetes.io/"
                               "region\":\"cloudgouv-eu-west-1\"}"));
    run(&id, items);
    expect(&id, "outscale", "cloudgouv-eu-west-1", NULL, NULL);
    k8s_identity_cleanup(&id);
    items = json_array();
    json_array_append_new(items, node("osc:///eu-west-2a/i-1", "{}"));
    run(&id, items);
    expect(&id, "outscale", "eu-west-2", NULL, NULL);
    k8s_identity_cleanup(&id);
}

static void test_gke(void **state)
{
    (void)state;
    struct k8s_identity id;
    json_t *items = json_array();
    json_array_append_new(items, node("gce://acme-prod-321/europe-west1-b/gke-main-pool-1",
                                      "{\"cloud.google.com/gke-nodepool\":\"default-pool\"}"));
    json_array_append_new(items, node("gce://acme-prod-321/europe-west1-c/gke-main-pool-2", "{}"));
    run(&id, items);
    /* two zones of one region: the region agrees, the zone does not */
    expect(&id, "gcp", "europe-west1", "acme-prod-321", NULL);
    assert_null(id.zone);
    k8s_identity_cleanup(&id);
}

static void test_aks(void **state)
{
    (void)state;
    struct k8s_identity id;
    json_t *items = json_array();
    json_array_append_new(
        items, node("azure:///subscriptions/0b1f6471-1bf0-4dda-aec3-111122223333/resourceGroups/"
                    "mc_rg-prod_aks-main_westeurope/providers/Microsoft.Compute/"
                    "virtualMachineScaleSets/aks-nodepool1-1/virtualMachines/0",
                    "{\"kubernetes.azure.com/"
                    "cluster\":\"MC_rg-prod_aks-main_westeurope\",\"topology.kubernetes.io/"
                    "region\":\"westeurope\"}"));
    run(&id, items);
    expect(&id, "azure", "westeurope", "0b1f6471-1bf0-4dda-aec3-111122223333", NULL);
    assert_string_equal(id.node_resource_group, "MC_rg-prod_aks-main_westeurope");
    k8s_identity_cleanup(&id);
}

static void test_aks_node_rg_never_parsed_for_name(void **state)
{
    (void)state;
    struct k8s_identity id;
    json_t *items = json_array();
    json_array_append_new(items, node("azure:///subscriptions/s/resourcegroups/x/providers/p",
                                      "{\"kubernetes.azure.com/"
                                      "cluster\":\"MC_rg_prod_aks_main_westeurope\",\"topology."
                                      "kubernetes.io/region\":\"westeurope\"}"));
    run(&id, items);
    expect(&id, "azure", "westeurope", "s", NULL);
    k8s_identity_cleanup(&id);
}

static void test_unknown_and_hybrid(void **state)
{
    (void)state;
    struct k8s_identity id;
    json_t *items = json_array();
    json_array_append_new(items, node("kind://docker/kind/kind-control-plane", "{}"));
    run(&id, items);
    expect(&id, "unknown", NULL, NULL, NULL);
    k8s_identity_cleanup(&id);

    items = json_array();
    json_array_append_new(items, node("aws:///eu-west-3a/i-1", "{}"));
    json_array_append_new(items, node("gce://p/europe-west1-b/n", "{}"));
    run(&id, items);
    expect(&id, "unknown", NULL, NULL, NULL);
    k8s_identity_cleanup(&id);

    items = json_array(); /* no nodes at all */
    run(&id, items);
    expect(&id, "unknown", NULL, NULL, NULL);
    k8s_identity_cleanup(&id);
}

static void test_malformed_nodes_do_not_crash(void **state)
{
    (void)state;
    struct k8s_identity id;
    json_t *items = json_loads("[1, null, \"x\", {\"spec\": 3}, {\"spec\": {\"providerID\": 4}},"
                               " {\"spec\": {\"providerID\": \"gce://\"}},"
                               " {\"spec\": {\"providerID\": \"azure://\"}},"
                               " {\"spec\": {\"providerID\": \"aws://\"}},"
                               " {\"metadata\": {\"labels\": []}}]",
                               0, NULL);
    assert_non_null(items);
    run(&id, items);
    assert_string_equal(id.provider, "unknown");
    k8s_identity_cleanup(&id);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_eks),
        cmocka_unit_test(test_eks_region_from_az_without_label),
        cmocka_unit_test(test_outscale_told_apart_from_aws),
        cmocka_unit_test(test_gke),
        cmocka_unit_test(test_aks),
        cmocka_unit_test(test_aks_node_rg_never_parsed_for_name),
        cmocka_unit_test(test_unknown_and_hybrid),
        cmocka_unit_test(test_malformed_nodes_do_not_crash),
    };
    return cmocka_run_group_tests_name("identity_nodes", tests, NULL, NULL);
}

/* libFuzzer target: cluster identity from a hostile or malformed NodeList response. */
#include "k8s_identity.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *root = json_loadb((const char *)data, size, JSON_DECODE_ANY, NULL);
    if (root == NULL) {
        return 0;
    }
    struct k8s_identity id = {0};
    json_t *items = json_is_array(root) ? root : json_object_get(root, "items");
    k8s_identity_from_nodes(&id, items);
    k8s_identity_cleanup(&id);
    json_decref(root);
    return 0;
}

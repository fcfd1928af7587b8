/* Placeholder translation unit so cg_k8s always has a source; replaced as modules land. */
typedef int cg_k8s_nonempty;

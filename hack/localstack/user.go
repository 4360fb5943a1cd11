package main

import "sigs.k8s.io/controller-runtime/pkg/envtest"

// adminUser is the local control plane's administrator, as kubectl users it.
func adminUser() envtest.User {
	return envtest.User{Name: "local-admin", Groups: []string{"system:masters"}}
}

//go:build tools

// Package tools pins helm for e2e/build. Its own module keeps helm's
// dependency versions from raising those of the Kubernetes binaries.
package tools

import (
	_ "helm.sh/helm/v3/cmd/helm"
)

//go:build tools

// Package tools pins kwok for e2e/build. Its own module keeps kwok's
// dependency versions from raising those of the Kubernetes binaries.
package tools

import (
	_ "sigs.k8s.io/kwok/cmd/kwok"
)

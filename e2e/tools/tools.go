//go:build tools

// Package tools pins the Kubernetes control-plane commands (and the etcd
// version Kubernetes itself pins) that e2e/build compiles. Never compiled:
// it only keeps the commands' packages in go.mod/go.sum.
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)

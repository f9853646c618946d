//go:build tools

// Package tools pins etcd, built from this module with the version k8s.io/kubernetes requires.
package tools

import _ "go.etcd.io/etcd/server/v3"

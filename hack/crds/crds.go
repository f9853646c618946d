// Package crds pins the modules whose CRD manifests the local cluster installs; nothing here is built.
package crds

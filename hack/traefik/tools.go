//go:build tools

// Package tools pins Traefik's command, built from this module by scripts/build-traefik.sh.
package tools

import _ "github.com/traefik/traefik/v3/cmd/traefik"

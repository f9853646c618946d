// The CRDs of the traffic routers' APIs, read from their modules (never copied by hand):
// Gateway API (standard channel) and Istio. scripts/router-crds.sh prints their paths.
module modelops.io/hack/crds

go 1.26.0

require (
	istio.io/api v1.32.0 // indirect
	sigs.k8s.io/gateway-api v1.6.3 // indirect
)

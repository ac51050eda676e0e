//go:build tools

// Package tools names the commands this module builds, so that `go mod tidy` keeps them.
package tools

import (
	_ "github.com/bojand/ghz/cmd/ghz"
	_ "github.com/grpc-ecosystem/grpc-health-probe"
	_ "helm.sh/helm/v4/cmd/helm"
)

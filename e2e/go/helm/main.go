// Command helm is the Helm v4 CLI, built from helm.sh/helm/v4 for fairlead's chart
// tests (lint, template, and installs into the e2e test clusters).
//
// Helm's own cmd/helm is a main package and cannot be imported, so this calls
// the same public entry point it does: helm.sh/helm/v4/pkg/cmd.NewRootCmd.
package main

import (
	"errors"
	"fmt"
	"os"

	// Client auth plugins for kubeconfigs that name one (as Helm's binary does).
	_ "k8s.io/client-go/plugin/pkg/client/auth"

	helmcmd "helm.sh/helm/v4/pkg/cmd"
	"helm.sh/helm/v4/pkg/kube"
)

func main() {
	// The field manager on objects Helm applies, whatever this binary is called.
	kube.ManagedFieldsManager = "helm"
	root, err := helmcmd.NewRootCmd(os.Stdout, os.Args[1:], helmcmd.SetupLogging)
	if err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
	if err := root.Execute(); err != nil {
		var exit helmcmd.CommandError
		if errors.As(err, &exit) {
			os.Exit(exit.ExitCode)
		}
		os.Exit(1)
	}
}

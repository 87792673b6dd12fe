// Command kubeconform validates Kubernetes manifests against JSON schemas, for
// fairlead's manifest tests. It takes kubeconform's flags (pkg/config) and
// validates with its library (pkg/validator, pkg/output), one resource at a
// time: kubeconform's own cmd/kubeconform is a main package and cannot be imported.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/yannh/kubeconform/pkg/config"
	"github.com/yannh/kubeconform/pkg/output"
	"github.com/yannh/kubeconform/pkg/resource"
	"github.com/yannh/kubeconform/pkg/validator"
)

// The module version this is built from (go.mod pins it).
const version = "v0.8.0"

func main() {
	cfg, usage, err := config.FromFlags(os.Args[0], os.Args[1:])
	switch {
	case cfg.Help:
		fmt.Println(usage)
		return
	case usage != "":
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(1)
	case err != nil:
		fmt.Fprintln(os.Stderr, "kubeconform:", err)
		os.Exit(1)
	case cfg.Version:
		fmt.Println(version)
		return
	}
	os.Exit(run(cfg))
}

// run validates every resource of cfg.Files (or stdin) and returns the exit code:
// 0 when none was invalid or failed, else 1.
func run(cfg config.Config) int {
	stdin := len(cfg.Files) == 0 || (len(cfg.Files) == 1 && cfg.Files[0] == "-")
	out, err := output.New(os.Stdout, cfg.OutputFormat, cfg.Summary, stdin, cfg.Verbose)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kubeconform:", err)
		return 1
	}
	v, err := validator.New(cfg.SchemaLocations, validator.Opts{
		Cache:                cfg.Cache,
		Debug:                cfg.Debug,
		SkipTLS:              cfg.SkipTLS,
		SkipKinds:            cfg.SkipKinds,
		RejectKinds:          cfg.RejectKinds,
		KubernetesVersion:    cfg.KubernetesVersion.String(),
		Strict:               cfg.Strict,
		IgnoreMissingSchemas: cfg.IgnoreMissingSchemas,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "kubeconform:", err)
		return 1
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var resources <-chan resource.Resource
	var problems <-chan error
	if stdin {
		resources, problems = resource.FromStream(ctx, "stdin", os.Stdin)
	} else {
		resources, problems = resource.FromFiles(ctx, cfg.Files, cfg.IgnoreFilenamePatterns, 1)
	}
	ok := true
	report := func(r validator.Result) {
		if r.Status == validator.Invalid || r.Status == validator.Error {
			ok = false
		}
		if err := out.Write(r); err != nil {
			fmt.Fprintln(os.Stderr, "kubeconform: writing a result:", err)
			ok = false
		}
	}
	// Both channels close when the files are read; read them until then.
	for resources != nil || problems != nil {
		select {
		case res, open := <-resources:
			if !open {
				resources = nil
				continue
			}
			report(v.ValidateResource(res))
		case err, open := <-problems:
			if !open {
				problems = nil
				continue
			}
			path := ""
			if de, isDiscovery := err.(resource.DiscoveryError); isDiscovery {
				path, err = de.Path, de.Err
			}
			report(validator.Result{Resource: resource.Resource{Path: path}, Err: err, Status: validator.Error})
		}
		if !ok && cfg.ExitOnError {
			break
		}
	}
	if err := out.Flush(); err != nil {
		fmt.Fprintln(os.Stderr, "kubeconform: writing the summary:", err)
		return 1
	}
	if !ok {
		return 1
	}
	return 0
}

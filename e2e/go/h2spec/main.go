// Command h2spec is the HTTP/2 conformance suite (github.com/summerwind/h2spec),
// for fairlead's h2spec test. Its cmd/h2spec is a main package and cannot be
// imported, so this takes the same flags and runs the suite with h2spec.Run.
package main

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/pflag"
	"github.com/summerwind/h2spec"
	"github.com/summerwind/h2spec/config"
)

// The module version this is built from (go.mod pins it).
const version = "v2.2.1"

func main() {
	flags := pflag.NewFlagSet("h2spec", pflag.ContinueOnError)
	flags.Usage = func() {
		fmt.Fprintln(os.Stderr, "Usage: h2spec [flags] [spec...]  (spec: a section such as http2/5.1 or generic/3)")
		flags.PrintDefaults()
	}
	c := &config.Config{}
	flags.StringVarP(&c.Host, "host", "h", "127.0.0.1", "target host")
	flags.IntVarP(&c.Port, "port", "p", 0, "target port (default 443 with --tls, else 80)")
	flags.StringVarP(&c.Path, "path", "P", "/", "target path")
	timeout := flags.IntP("timeout", "o", 2, "seconds to wait for each test")
	flags.IntVar(&c.MaxHeaderLen, "max-header-length", 4000, "maximum length of an HTTP header")
	flags.StringVarP(&c.JUnitReport, "junit-report", "j", "", "write a JUnit report to this file")
	flags.BoolVarP(&c.Strict, "strict", "S", false, "also run the strict test cases")
	flags.BoolVar(&c.DryRun, "dryrun", false, "print the test cases without running them")
	flags.BoolVarP(&c.TLS, "tls", "t", false, "connect over TLS")
	flags.BoolVarP(&c.Insecure, "insecure", "k", false, "do not verify the server's certificate")
	flags.BoolVarP(&c.Verbose, "verbose", "v", false, "verbose log")
	showVersion := flags.Bool("version", false, "print the version and exit")
	help := flags.Bool("help", false, "print this help and exit")
	if err := flags.Parse(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "h2spec:", err)
		os.Exit(2)
	}
	switch {
	case *help:
		flags.Usage()
		return
	case *showVersion:
		fmt.Println(version)
		return
	}
	if c.Port == 0 {
		c.Port = 80
		if c.TLS {
			c.Port = 443
		}
	}
	c.Timeout = time.Duration(*timeout) * time.Second
	c.Sections = flags.Args()
	ok, err := h2spec.Run(c)
	if err != nil {
		fmt.Fprintln(os.Stderr, "h2spec:", err)
		os.Exit(1)
	}
	if !ok {
		os.Exit(1)
	}
}

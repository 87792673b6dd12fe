// h2spec v2.2.1+incompatible (github.com/summerwind/h2spec), the HTTP/2 conformance suite:
// the version `go install github.com/summerwind/h2spec/cmd/h2spec@latest` resolves to.
module fairlead.invalid/e2e/h2spec

go 1.26.0

require (
	github.com/spf13/pflag v1.1.0
	github.com/summerwind/h2spec v2.2.1+incompatible
)

require (
	github.com/fatih/color v1.19.0 // indirect
	github.com/mattn/go-colorable v0.1.14 // indirect
	github.com/mattn/go-isatty v0.0.20 // indirect
	golang.org/x/net v0.63.0 // indirect
	golang.org/x/sys v0.50.0 // indirect
	golang.org/x/text v0.44.0 // indirect
)

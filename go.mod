module github.com/hookreg/hookreg

go 1.26.8

require (
	github.com/Masterminds/semver/v3 v3.5.0
	github.com/rogpeppe/go-internal v1.16.0
)

require (
	golang.org/x/sys v0.49.0 // indirect
	golang.org/x/tools v0.52.0 // indirect
)

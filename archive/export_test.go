package archive

// WithFormat returns opts set to write format version format: the tests
// of the readers of earlier formats write them.
func WithFormat(opts Options, format int) Options {
	opts.format = format
	return opts
}

// Totaled returns the format 3 manifest of m, whose Tables declare its
// tables: the totals instead of the tables.
func Totaled(m Manifest) Manifest {
	tt := totalsOf(m.Tables)
	tt.Set(&m)
	m.Tables = nil
	m.Format = FormatUnsigned
	return m
}

// EncodedLen is encodedLen, for the tests.
var EncodedLen = encodedLen

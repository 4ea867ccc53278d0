package bolt

// CheckPages is checkPages, for the tests of package bolt_test.
var CheckPages = checkPages

// SetMapPages turns checkPages' reads through a mapping of the file on or
// off, and returns the function that restores the setting.
func SetMapPages(on bool) func() {
	old := mapPages
	mapPages = on
	return func() { mapPages = old }
}

// SetMappedHook sets the function checkPages calls once it has mapped the
// file, and returns the function that removes it.
func SetMappedHook(fn func(path string)) func() {
	mappedHook = fn
	return func() { mappedHook = nil }
}

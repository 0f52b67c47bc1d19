// The Go side of the `greet` comparison: the same work as tests/fixtures/fixture-greet,
// built with -buildmode=plugin and called through plugin.Lookup.
package main

// Greet reads "name" and sets "greeting" to "hello " + name.
func Greet(ctx map[string]interface{}) error {
	name, _ := ctx["name"].(string)
	ctx["greeting"] = "hello " + name
	return nil
}

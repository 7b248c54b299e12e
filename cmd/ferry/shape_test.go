package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// TestFunctionsStaySmall guards the code's shape (issue: an exporter like
// the importer): no non-test function of the module is over 80 lines or
// takes more than 6 parameters.
func TestFunctionsStaySmall(t *testing.T) {
	t.Parallel()
	fset := token.NewFileSet()
	filepath.WalkDir("../..", func(path string, d fs.DirEntry, err error) error {
		if err != nil || (d.IsDir() && (d.Name() == ".git" || d.Name() == ".cache" || d.Name() == "tools")) {
			if d != nil && d.IsDir() && err == nil {
				return filepath.SkipDir
			}
			return err
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || fn.Body == nil {
				continue
			}
			lines := fset.Position(fn.End()).Line - fset.Position(fn.Pos()).Line + 1
			params := 0
			for _, p := range fn.Type.Params.List {
				params += max(len(p.Names), 1)
			}
			if lines > 80 || params > 6 {
				t.Errorf("%s: %s has %d lines and %d parameters (at most 80 and 6)", fset.Position(fn.Pos()), fn.Name.Name, lines, params)
			}
		}
		return nil
	})
}

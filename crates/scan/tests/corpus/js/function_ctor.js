const f = new Function("a", "b", body);

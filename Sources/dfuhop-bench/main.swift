print("dfuhop-bench: no benchmark yet")

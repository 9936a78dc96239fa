"""What a pipeline is: the DAG model (frozen values), its errors, its ``cis.toml`` form, the rules
every DAG obeys and the missing/ambiguous-input checks. No process is started here."""

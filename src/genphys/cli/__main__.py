from genphys.cli.main import main

raise SystemExit(main())

from tinybounty.cli import main

raise SystemExit(main())

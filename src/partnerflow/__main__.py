from partnerflow.cli import main

main()

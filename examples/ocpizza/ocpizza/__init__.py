"""OC Pizza example project (a stand-in for the real OC Pizza application)."""
